//! Decode anything, then walk, diff and render what decodes: nothing may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use migdiff::filter::Filter;

fuzz_target!(|data: &[u8]| {
    if let Ok(dump) = migdiff::stream::decode(data, None) {
        let _ = migdiff::diff::diff_dumps(&dump, &dump);
        let _ = migdiff::render::document::document(&dump, &Filter::none());
    }
});
