//! The engine's store conformance suite against IdbStore, in headless Chromium. Each case gets
//! a database of its own, deleted afterwards.
#![cfg(target_family = "wasm")]

use tether_wasm::IdbStore;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

macro_rules! case {
    ($name:ident) => {
        #[wasm_bindgen_test]
        async fn $name() {
            let db = format!(
                "tether-conformance-{}-{}",
                stringify!($name),
                js_sys::Math::random()
            );
            let store = IdbStore::open(&db).await.expect("open IndexedDB");
            tether_engine::testing::$name(&store).await;
            drop(store);
            IdbStore::delete(&db).await.expect("delete IndexedDB");
        }
    };
}

tether_engine::for_each_conformance_case!(case);
