//! Sandbox test for MIME handlers: misbehaves in `on-part`, the way config `mode` says —
//! `panic` (a trap), `loop` (the CPU deadline), `hog` (the memory limit) or `bad` (an
//! invalid answer: a Content-Type with a line break in it).

use wasmail_plugin_sdk::{export_plugin, host, Manifest, PartInfo, PartResult, Plugin};

#[derive(Default)]
struct MimeTrouble {
    hoard: Vec<Vec<u8>>,
}

impl Plugin for MimeTrouble {
    fn manifest() -> Manifest {
        Manifest::new("mime-trouble", "0.1.0").mime_type("*/*")
    }

    fn on_part(&mut self, part: PartInfo) -> PartResult {
        match host::config("mode").as_deref() {
            Some("panic") => panic!("mime-trouble panics on section {}", part.section),
            Some("loop") => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(part.size + 1));
                }
            }
            Some("hog") => loop {
                let mut block = vec![0u8; 1 << 20];
                block[0] = 1;
                self.hoard.push(std::hint::black_box(block));
            },
            _ => PartResult::replace(b"x".to_vec(), Some("text/plain\r\nBcc: victim@example.org".into())),
        }
    }
}

export_plugin!(MimeTrouble);
