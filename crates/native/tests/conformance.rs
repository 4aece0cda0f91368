//! The engine's store conformance suite on [`SqliteStore`], each case on a fresh file in a
//! temporary directory (so the real file path, WAL and reopen logic are what is tested).

use tether_native::SqliteStore;

macro_rules! case {
    ($name:ident) => {
        #[test]
        fn $name() {
            let dir = tempfile::tempdir().unwrap();
            let store = SqliteStore::open(dir.path().join("replica.db")).unwrap();
            futures_executor::block_on(tether_engine::testing::$name(&store));
        }
    };
}

tether_engine::for_each_conformance_case!(case);
