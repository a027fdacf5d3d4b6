//! Each work budget, with an input built to exceed it: a clear error naming the offset and
//! the budget, quickly, never an abort.

mod common;

use common::StreamBuilder;
use migdiff::{stream, ErrorKind};

/// Arrays of structs that take no bytes, nested: each array alone stays under the
/// per-array bound (65,536), together they would be 65,536^depth nodes.
fn nested_empty_arrays(depth: usize) -> String {
    let mut field = r#"{"name": "leaf", "array_len": 65536, "type": "struct", "struct": {"vmsd_name": "leaf", "version": 1, "fields": []}, "size": 0}"#.to_string();
    for level in 0..depth {
        field = format!(
            r#"{{"name": "level{level}", "array_len": 65536, "type": "struct", "struct": {{"vmsd_name": "l{level}", "version": 1, "fields": [{field}]}}, "size": 0}}"#
        );
    }
    field
}

#[test]
fn nested_arrays_of_empty_structs_exceed_the_node_budget() {
    let data = StreamBuilder::new("pc-i440fx-10.0")
        .device("nest", 0, &nested_empty_arrays(2), &[])
        .finish();
    let err = stream::decode(&data, None).expect_err("4 * 10^14 nodes");
    assert!(
        matches!(err.kind, ErrorKind::OverBudget { what: "nodes", .. }),
        "{err}"
    );
    let text = err.to_string();
    assert!(text.contains("work budget of one decode"), "{text}");
    assert!(text.contains("'nest' instance 0"), "{text}");
    assert!(err.offset <= data.len() as u64);
}

#[test]
fn the_budget_is_per_decode_not_per_section() {
    // Many sections, each under the budget alone.
    let mut builder = StreamBuilder::new("pc-i440fx-10.0");
    for i in 0..40 {
        builder = builder.device(&format!("nest{i}"), 0, &nested_empty_arrays(0), &[]);
    }
    let data = builder.finish();
    let err = stream::decode(&data, None).expect_err("40 * 65,536 nodes from a few KB");
    assert!(matches!(err.kind, ErrorKind::OverBudget { .. }), "{err}");
}

/// An export is input too: the pages its RAM blocks claim count against one budget for
/// the whole export, not 2^28 per block.
#[test]
fn an_export_claiming_too_many_pages_across_blocks_is_refused() {
    let block = |name: &str| {
        format!(
            r#"{{"name": "{name}", "used_length": 1099511627776, "addr": null,
                 "pages": [{{"start": 0, "count": 33554432, "digest": "0000000000000002"}}],
                 "zero_pages": 0, "data_pages": 0, "opaque_pages": 0}}"#
        )
    };
    let export = format!(
        r#"{{"migdiff_export": 1, "migdiff": "0.1.0",
            "source": {{"path": "x", "size": 0, "sha256": "", "container": "raw stream"}},
            "dump": {{"machine": null, "capabilities": [], "page_size": 4096, "devices": [],
              "ram": [{}, {}, {}],
              "stream": {{"size": 0, "footers": true, "commands": [], "ram_chunks": 0,
                          "vmdesc_len": null}},
              "warnings": []}}}}"#,
        block("a"),
        block("b"),
        block("c")
    );
    let err = migdiff::export::read(export.as_bytes())
        .expect_err("3 * 2^25 pages, each block alone within the budget");
    let text = err.to_string();
    assert!(
        text.contains("more than") && text.contains("pages, the work budget"),
        "{text}"
    );
}

#[test]
fn an_export_of_an_unknown_layout_version_is_refused() {
    let err = migdiff::export::read(br#"{"migdiff_export": 7, "migdiff": "9.0.0", "dump": {}}"#)
        .expect_err("layout 7");
    assert_eq!(
        err.to_string(),
        format!(
            "export layout version 7 (written by migdiff 9.0.0); this migdiff ({}) reads versions 1 to 2",
            env!("CARGO_PKG_VERSION")
        )
    );
}
