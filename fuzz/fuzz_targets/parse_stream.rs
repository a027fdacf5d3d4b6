//! Decode anything, then walk, diff and render what decodes: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(dump) = migdiff::decode(data, None) {
        let _ = migdiff::compare(&dump, &dump, &migdiff::Config::default());
        let _ = migdiff::write_tree(&mut std::io::sink(), &dump);
    }
});
