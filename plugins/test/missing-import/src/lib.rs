//! Sandbox test: imports `wasmail-test:missing/nowhere`, which the host does not offer.

wit_bindgen::generate!({ path: "wit", world: "missing" });

struct Component;

impl Guest for Component {
    fn run() -> u32 {
        wasmail_test::missing::nowhere::unavailable()
    }
}

export!(Component);
