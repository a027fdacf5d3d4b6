//! Each way a stream can be bad gives a typed error naming the byte offset and the section,
//! never a panic, on synthetic streams built to have exactly that fault.

mod common;

use common::{StreamBuilder, TIMER_FIELDS};
use migdiff::{ErrorKind, ParseError};

fn good() -> StreamBuilder {
    StreamBuilder::new("pc-i440fx-10.0")
        .ram("pc.ram", 4)
        .device("timer", 0, TIMER_FIELDS, &[0x11; 24])
}

fn decode_err(data: &[u8]) -> ParseError {
    migdiff::decode(data, None).expect_err("stream should be rejected")
}

fn section_of(err: &ParseError) -> Option<(&str, u32)> {
    err.section
        .as_ref()
        .map(|s| (s.idstr.as_str(), s.instance_id))
}

#[test]
fn synthetic_stream_decodes() {
    let dump = migdiff::decode(&good().finish(), None).unwrap();
    assert_eq!(dump.machine.as_deref(), Some("pc-i440fx-10.0"));
    assert_eq!(dump.ram[0].zero_pages, 4);
    assert_eq!(dump.devices[0].idstr, "timer");
    assert_eq!(dump.stream.ram_chunks, 3);
}

#[test]
fn bad_magic_and_version() {
    let mut data = good().finish();
    data[0] = b'X';
    assert!(matches!(decode_err(&data).kind, ErrorKind::BadMagic(_)));
    let mut data = good().finish();
    data[7] = 2;
    let err = decode_err(&data);
    assert_eq!(
        (err.offset, err.kind.clone()),
        (4, ErrorKind::UnsupportedVersion(2))
    );
}

#[test]
fn field_size_off_by_some_bytes_is_a_desync_at_the_footer() {
    let b = good();
    // The description says 9 bytes for the last field; the stream has 8, so the decoder
    // reads one byte of the footer as data and finds no footer after it.
    let json = b.json().replace(
        r#""cpu_clock_offset", "type": "int64", "size": 8"#,
        r#""cpu_clock_offset", "type": "buffer", "size": 9"#,
    );
    let footer_at = (b.buf.len() - 5) as u64;
    let err = decode_err(&b.finish_with_json(&json));
    assert_eq!(section_of(&err), Some(("timer", 0)));
    assert_eq!(err.offset, footer_at + 1);
    let ErrorKind::MissingFooter {
        last_field: Some((field, _)),
        ..
    } = &err.kind
    else {
        panic!("{err}")
    };
    assert_eq!(field, "cpu_clock_offset");
    assert!(
        err.to_string()
            .contains("last field decoded: 'cpu_clock_offset'"),
        "{err}"
    );
}

#[test]
fn section_missing_from_vmdesc_is_reported_not_a_key_error() {
    let b = good();
    let json = b
        .json()
        .replace(r#""instance_id": 0"#, r#""instance_id": 7"#);
    let full_at = b.buf.len() - 24 - 5 - 19;
    let err = decode_err(&b.finish_with_json(&json));
    assert_eq!(err.kind, ErrorKind::NoDescription);
    assert_eq!(section_of(&err), Some(("timer", 0)));
    assert_eq!(err.offset, full_at as u64);
}

#[test]
fn no_vmdesc_says_so_at_the_first_device() {
    let data = good().finish_without_vmdesc();
    let err = decode_err(&data);
    assert_eq!(err.kind, ErrorKind::NoVmdesc);
    assert_eq!(section_of(&err), Some(("timer", 0)));
    assert!(err.to_string().contains("--desc"));
    // With the description from elsewhere, it decodes.
    let schema = migdiff::schema_of(&good().finish()).unwrap();
    let dump = migdiff::decode(&data, Some(&schema)).unwrap();
    assert_eq!(dump.devices.len(), 1);
}

#[test]
fn corrupt_json_reports_its_absolute_offset() {
    let b = good();
    let json_start = b.buf.len() + 6;
    let json = b.json();
    let broken = json.replacen("\"devices\"", "\"devices\"]", 1);
    let err = decode_err(&b.finish_with_json(&broken));
    assert!(matches!(err.kind, ErrorKind::BadVmdesc(_)));
    assert_eq!(err.offset, (json_start + broken.find(']').unwrap()) as u64);
}

#[test]
fn unknown_section_type_and_unknown_section_id() {
    let b = good().raw(&[0x09]);
    let at = b.buf.len() - 1;
    let err = decode_err(&b.finish());
    assert_eq!(
        (err.offset, err.kind.clone()),
        (at as u64, ErrorKind::UnknownSectionType(9))
    );

    let b = good().raw(&[0x02, 0, 0, 0, 9]);
    let at = b.buf.len() - 5;
    let err = decode_err(&b.finish());
    assert_eq!(
        (err.offset, err.kind.clone()),
        (at as u64, ErrorKind::UnknownSectionId(9))
    );
}

#[test]
fn footer_with_another_sections_id() {
    let mut data = good().finish();
    // The timer's footer is the 5 bytes before EOF; name section 5 instead of 1.
    let eof = data.iter().rposition(|&b| b == 0x06).unwrap() - 1;
    data[eof - 1] = 5;
    let err = decode_err(&data);
    assert_eq!(
        err.kind,
        ErrorKind::FooterMismatch {
            expected: 1,
            found: 5
        }
    );
    assert_eq!(section_of(&err), Some(("timer", 0)));
    assert_eq!(err.offset, (eof - 5) as u64);
}

#[test]
fn unknown_command_is_skipped_with_a_warning() {
    let data = good().raw(&[0x08, 0, 42, 0, 3, 1, 2, 3]).finish();
    let dump = migdiff::decode(&data, None).unwrap();
    assert_eq!(dump.stream.commands[0].name, "UNKNOWN(42)");
    assert!(dump.warnings[0]
        .message
        .contains("unknown command 42 (3 bytes) skipped"));
}

#[test]
fn stream_without_footers_decodes_with_a_warning() {
    let data = StreamBuilder::new("xenfv")
        .without_footers()
        .ram("pc.ram", 2)
        .device("timer", 0, TIMER_FIELDS, &[0x11; 24])
        .finish();
    let dump = migdiff::decode(&data, None).unwrap();
    assert!(!dump.stream.footers);
    assert_eq!(dump.devices.len(), 1);
    assert!(dump.warnings[0].message.contains("no section footers"));
}

#[test]
fn long_idstr_of_255_bytes() {
    let idstr = "d".repeat(255);
    let data = StreamBuilder::new("pc")
        .device(
            &idstr,
            0,
            r#"{"name": "v", "type": "uint8", "size": 1}"#,
            &[7],
        )
        .finish();
    let dump = migdiff::decode(&data, None).unwrap();
    assert_eq!(dump.devices[0].idstr.len(), 255);
}

#[test]
fn oracle_signedness_differs_from_qemu_for_equal_types() {
    // analyze-migration.py prints `uint8 equal` 0xff as "0xff (-1)"; QEMU compares it as
    // unsigned, and so does migdiff.
    let data = StreamBuilder::new("pc")
        .device(
            "d",
            0,
            r#"{"name": "v", "type": "uint8 equal", "size": 1}"#,
            &[0xff],
        )
        .finish();
    let dump = migdiff::decode(&data, None).unwrap();
    assert_eq!(
        dump.devices[0].body.fields[0].value,
        migdiff::Value::Uint {
            value: 255,
            size: 1
        }
    );
}

#[test]
fn hostile_array_lengths_are_bounded_by_the_input() {
    // A huge count of one-byte scalars, of empty buffers, and of empty structs: each fails
    // at the end of the data or is refused, without allocating for the count (this hung
    // before elements that take no bytes were bounded).
    let huge = 1u64 << 40;
    let cases = [
        (
            format!(r#"{{"name": "a", "type": "uint8", "size": 1, "array_len": {huge}}}"#),
            "need 1 bytes for array element, 0 left",
        ),
        (
            format!(r#"{{"name": "b", "type": "buffer", "size": 0, "array_len": {huge}}}"#),
            "elements that take no bytes each",
        ),
        (
            format!(
                r#"{{"name": "s", "type": "struct", "size": 0, "array_len": {huge},
                    "struct": {{"vmsd_name": "e", "version": 1, "fields": []}}}}"#
            ),
            "elements that take no bytes each",
        ),
    ];
    for (fields, message) in cases {
        let data = StreamBuilder::new("pc-i440fx-10.0")
            .device("d", 0, &fields, &[1, 2, 3])
            .finish();
        let err = decode_err(&data);
        assert_eq!(section_of(&err), Some(("d", 0)), "{fields}: {err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}
