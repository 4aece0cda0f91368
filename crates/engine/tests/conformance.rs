//! The store conformance suite on the reference [`MemoryStore`].

macro_rules! case {
    ($name:ident) => {
        #[test]
        fn $name() {
            let store = tether_engine::MemoryStore::new();
            futures_executor::block_on(tether_engine::testing::$name(&store));
        }
    };
}

tether_engine::for_each_conformance_case!(case);
