//! What QEMU and libvirt really write around a stream: compression, libvirt save images,
//! `file:` URIs with an offset, standard input, and dumps without a vmdesc.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{StreamBuilder, TIMER_FIELDS};
use migdiff::ErrorKind;
use migdiff::{Container, Input};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn decode_file(path: &Path) -> (migdiff::Dump, Container) {
    let input = Input::open(path).unwrap();
    let dump = migdiff::decode(input.stream(), None).unwrap();
    (dump, input.container)
}

#[test]
fn gzip_and_zstd_dumps_decode_like_the_raw_one() {
    let (raw, _) = decode_file(&fixture("pc10-stopped.mig"));
    for (name, container) in [
        ("pc10-stopped.mig.gz", Container::Gzip),
        ("pc10-stopped.mig.zst", Container::Zstd),
    ] {
        let (dump, found) = decode_file(&fixture(name));
        assert_eq!(found, container);
        assert_eq!(dump, raw, "{name}");
    }
}

/// A `virsh save` image: header, NUL-padded domain XML, then the stream.
fn libvirt_image(stream: &[u8], format: u32) -> Vec<u8> {
    let xml = b"<domain type='kvm'>\n  <os>\n    <type arch='x86_64' machine='pc-i440fx-10.0'>hvm</type>\n  </os>\n</domain>\n";
    let data_len = 4096u32;
    let mut out = b"LibvirtQemudSave".to_vec();
    for word in [2, data_len, 1, format, 0] {
        out.extend_from_slice(&word.to_le_bytes());
    }
    out.extend_from_slice(&[0; 14 * 4]);
    let mut padded = xml.to_vec();
    padded.resize(data_len as usize, 0);
    out.extend_from_slice(&padded);
    out.extend_from_slice(stream);
    out
}

#[test]
fn libvirt_save_images_raw_and_gzip() {
    let dir = tempfile::tempdir().unwrap();
    let raw = std::fs::read(fixture("pc10-stopped.mig")).unwrap();
    let gz = std::fs::read(fixture("pc10-stopped.mig.gz")).unwrap();
    let (expected, _) = decode_file(&fixture("pc10-stopped.mig"));
    for (format, stream, compression) in [(0, &raw, "raw"), (1, &gz, "gzip")] {
        let path = dir.path().join(format!("{compression}.save"));
        std::fs::write(&path, libvirt_image(stream, format)).unwrap();
        let (dump, container) = decode_file(&path);
        assert_eq!(dump, expected);
        assert_eq!(
            container,
            Container::Libvirt {
                machine: Some("pc-i440fx-10.0".into()),
                compression: compression.into(),
                stream_offset: 92 + 4096,
            }
        );
    }
    // xz (format 3) is named, not guessed at.
    let path = dir.path().join("xz.save");
    std::fs::write(&path, libvirt_image(&raw, 3)).unwrap();
    let err = Input::open(&path).err().expect("xz is refused").to_string();
    assert!(
        err.contains("compressed with xz") && err.contains("0x105c"),
        "{err}"
    );
}

/// The most compressible dump QEMU writes: a guest that never ran, all zero pages (9 bytes
/// a page), compressed at zstd's level that does best on it (17: ~100-160x, where -19 gives
/// ~30x and gzip -9 ~4x) must stay well inside the decompression budget.
#[test]
fn zero_ram_guest_at_zstd_best_ratio_stays_within_budget() {
    // A 4 GiB guest: 1 Mi zero pages, a 9.4 MB stream.
    let data = StreamBuilder::new("pc")
        .ram("pc.ram", 1 << 20)
        .device("timer", 0, TIMER_FIELDS, &[0; 24])
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let budget = migdiff::Budget::default();
    for (name, compressed) in [
        ("zero.mig.zst", zstd::bulk::compress(&data, 17).unwrap()),
        ("zero.mig.gz", {
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
            std::io::Write::write_all(&mut enc, &data).unwrap();
            enc.finish().unwrap()
        }),
    ] {
        let ratio = data.len() as u64 / compressed.len() as u64;
        eprintln!(
            "{name}: {} -> {} bytes, {ratio}x",
            data.len(),
            compressed.len()
        );
        assert!(ratio * 3 < budget.ratio, "{name}: {ratio}x");
        let path = dir.path().join(name);
        std::fs::write(&path, &compressed).unwrap();
        let input = Input::open(&path).unwrap();
        assert_eq!(input.stream(), &data[..], "{name}");
    }
}

#[test]
fn standard_input_redirected_from_a_compressed_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["--format", "summary", "-"])
        .arg(fixture("pc10-stopped.mig"))
        .stdin(std::fs::File::open(fixture("pc10-stopped.mig.zst")).unwrap())
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "no differences\n");
}

#[test]
fn file_uri_with_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut padded = vec![0xaa; 0x1000];
    padded.extend_from_slice(&std::fs::read(fixture("pc10-stopped.mig")).unwrap());
    let path = dir.path().join("padded.mig");
    std::fs::write(&path, padded).unwrap();
    let uri = PathBuf::from(format!("file:{},offset=0x1000", path.display()));
    let (dump, _) = decode_file(&uri);
    assert_eq!(dump.machine.as_deref(), Some("pc-i440fx-10.0"));
    let beyond = PathBuf::from(format!("file:{},offset=99999999", path.display()));
    assert!(Input::open(&beyond).is_err());
}

#[test]
fn standard_input_as_dash() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["--format", "summary", "-"])
        .arg(fixture("pc10-stopped.mig"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let data = std::fs::read(fixture("pc10-stopped.mig.gz")).unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8(out.stdout).unwrap(), "no differences\n");
}

#[test]
fn suppressed_vmdesc_is_named_and_desc_from_another_dump_fixes_it() {
    let data = std::fs::read(fixture("pc10-suppress-vmdesc.mig")).unwrap();
    let err = migdiff::decode(&data, None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::NoVmdesc);
    // RAM decodes without a description; the first device section is where it is needed.
    assert_eq!(
        err.section.as_ref().map(|s| s.idstr.as_str()),
        Some("timer")
    );
    assert!(err.offset > 0x40000);
    let schema = migdiff::schema_of(&std::fs::read(fixture("pc10-stopped.mig")).unwrap()).unwrap();
    let dump = migdiff::decode(&data, Some(&schema)).unwrap();
    assert_eq!(dump.devices.len(), 30);

    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(["--format", "summary", "--desc"])
        .args([
            fixture("pc10-stopped.mig"),
            fixture("pc10-stopped.mig"),
            fixture("pc10-suppress-vmdesc.mig"),
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn iterative_sections_migdiff_does_not_read_are_refused_by_name() {
    // A "block" START section (block migration, QEMU < 9.1): no description and no
    // length, so no way to skip it.
    let mut b = StreamBuilder::new("pc").device("timer", 0, TIMER_FIELDS, &[0; 24]);
    let at = b.buf.len() as u64;
    b = b
        .raw(&[0x01, 0, 0, 0, 9, 5])
        .raw(b"block")
        .raw(&[0, 0, 0, 0, 0, 0, 0, 1, 0x01]);
    let err = migdiff::decode(&b.finish(), None).unwrap_err();
    assert_eq!(err.kind, ErrorKind::UnsupportedSection);
    assert_eq!(err.offset, at);
    assert_eq!(err.section.as_ref().unwrap().idstr, "block");
    assert!(
        err.to_string().contains("it reads 'ram', 'spapr/htab'"),
        "{err}"
    );
    // A section migdiff reads, at a version it does not.
    let mut b = StreamBuilder::new("pc");
    b = b
        .raw(&[0x01, 0, 0, 0, 9, 10])
        .raw(b"spapr/htab")
        .raw(&[0, 0, 0, 0, 0, 0, 0, 2]);
    let err = migdiff::decode(&b.finish(), None).unwrap_err();
    assert!(
        err.to_string()
            .contains("spapr/htab section version 2, expected 1"),
        "{err}"
    );
}

#[test]
fn mapped_ram_without_its_block_header_is_refused_clearly() {
    // A configuration listing the mapped-ram capability, as QEMU's legacy layout writes it,
    // then a block list without the mapped-ram header each block has in such a file.
    let mut b = StreamBuilder::new("pc");
    b = b
        .raw(&[0x05, 26])
        .raw(b"configuration/capabilities")
        .raw(&[0, 0, 0, 1, 0, 0, 0, 1, 10])
        .raw(b"mapped-ram");
    let data = b.ram("pc.ram", 1).finish();
    let err = migdiff::decode(&data, None).unwrap_err();
    assert!(
        matches!(err.kind, ErrorKind::Unsupported(ref m) if m.contains("mapped-ram")),
        "{err}"
    );
    assert_eq!(err.section.as_ref().unwrap().idstr, "ram");
}
