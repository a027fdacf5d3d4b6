//! Bug-report attachments (export, report) and description-only comparison (--schema-only,
//! including `-dump-vmstate` files), on the real fixtures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::Digest;

use common::{StreamBuilder, TIMER_FIELDS};

fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_migdiff"))
        .args(args)
        .current_dir(testdata())
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap(),
        text(out.stdout),
        text(out.stderr),
    )
}

#[test]
fn export_round_trips_against_its_own_dump() {
    let dir = tempfile::tempdir().unwrap();
    for name in [
        "pc10-running.mig",
        "q35-10-xhci-tablet.mig",
        "pc10-stopped.mig.zst",
    ] {
        let out = dir.path().join(format!("{name}.json"));
        let (code, _, stderr) = run(&["export", name, "-o", out.to_str().unwrap()]);
        assert_eq!(code, 0, "{stderr}");
        let (code, stdout, _) = run(&["--no-default-ignores", out.to_str().unwrap(), name]);
        assert_eq!((code, stdout.as_str()), (0, ""), "{name}");
        let export: migdiff::Export =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        assert_eq!(export.source.path, name);
        assert_eq!(export.source.sha256.len(), 64);
    }
    // An export compares with another dump like the dump itself would.
    let export = dir.path().join("pc10-running.mig.json");
    let (code, via_export, _) = run(&[
        "--format",
        "summary",
        export.to_str().unwrap(),
        "pc10-stopped.mig",
    ]);
    let (_, direct, _) = run(&[
        "--format",
        "summary",
        "pc10-running.mig",
        "pc10-stopped.mig",
    ]);
    assert_eq!((code, via_export), (1, direct));
}

#[test]
fn export_holds_no_guest_memory() {
    let mut page = [0u8; 4096];
    let secret = b"guest secret: hunter2 0123456789abcdef";
    for chunk in page.chunks_mut(secret.len()) {
        chunk.copy_from_slice(&secret[..chunk.len()]);
    }
    let data = StreamBuilder::new("pc-i440fx-10.0")
        .ram_page("pc.ram", &page)
        .device("timer", 0, TIMER_FIELDS, &[0x11; 24])
        .finish();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("secret.mig");
    std::fs::write(&dump, &data).unwrap();
    let json = dir.path().join("secret.json");
    let (code, _, stderr) = run(&[
        "export",
        dump.to_str().unwrap(),
        "-o",
        json.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(&json).unwrap();
    let hex: String = secret[..16].iter().map(|b| format!("{b:02x}")).collect();
    assert!(
        !text.contains("hunter2") && !text.contains(&hex),
        "guest memory leaked into the export"
    );
    // ... yet the page is still known by its digest: a changed page shows as a difference.
    page[100] ^= 1;
    let changed = StreamBuilder::new("pc-i440fx-10.0")
        .ram_page("pc.ram", &page)
        .device("timer", 0, TIMER_FIELDS, &[0x11; 24])
        .finish();
    let other = dir.path().join("changed.mig");
    std::fs::write(&other, changed).unwrap();
    let (code, stdout, _) = run(&[json.to_str().unwrap(), other.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("ram/pc.ram: 1 of 1 page differs, at offsets 0x0-0xfff"),
        "{stdout}"
    );
}

#[test]
fn markdown_report_names_both_inputs_and_holds_the_diff() {
    let (code, md, _) = run(&["report", "pc72-qemu72.mig", "pc72-qemu10.mig"]);
    assert_eq!(code, 1);
    let sha = |name: &str| {
        let digest = sha2::Sha256::digest(std::fs::read(testdata().join(name)).unwrap());
        digest
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    for needle in [
        "# migdiff report: `pc72-qemu72.mig` vs `pc72-qemu10.mig`",
        "**8 differences: 5 schema, 3 RAM; 3 ignored**",
        &format!(
            "| sha256 | `{}` | `{}` |",
            sha("pc72-qemu72.mig"),
            sha("pc72-qemu10.mig")
        ),
        "| machine | `pc-i440fx-7.2` | `pc-i440fx-7.2` |",
        "| `hpet (0)` | 0 | 1 | 0 | 0 |",
        "- **schema** `hpet (0)/num_timers_save: renamed from 'num_timers'  [identical on the wire]`",
        "```diff\n--- pc72-qemu72.mig\n+++ pc72-qemu10.mig\n@@ ",
        concat!("migdiff ", env!("CARGO_PKG_VERSION")),
    ] {
        assert!(md.contains(needle), "report lacks {needle:?}:\n{md}");
    }
}

/// GitHub and GitLab refuse comments over 65,536 characters. e1000 in full (its 128 KB of
/// registers) makes a 1.7 MB report: the report is trimmed to fit, keeps what matters most
/// (the RAM hunk), names what it left out, and the full diff is written beside it.
#[test]
fn markdown_report_fits_a_comment_and_puts_the_full_diff_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.md");
    let pair = ["pc10-stopped.mig", "pc10-e1000.mig"];
    let args = [
        &["report", "--full", "-o", out.to_str().unwrap()][..],
        &pair,
    ]
    .concat();
    let (code, _, stderr) = run(&args);
    assert_eq!(code, 1, "{stderr}");
    let md = std::fs::read_to_string(&out).unwrap();
    assert!(
        md.chars().count() <= 65_536,
        "{} characters",
        md.chars().count()
    );
    assert!(md.contains(
        "> Trimmed to fit a 65536-character comment: left out 1 hunk \
         (of `0000:00:02.0/e1000 (0)`). The full diff is in `r.full.diff`, beside this report."
    ));
    assert!(md.contains("\n@@ -5,11 +5,12 @@ [ram]\n"), "{md}");
    assert!(!md.contains("mac_reg"));
    // The file beside it is what the diff command prints: every note and hunk.
    let full = std::fs::read_to_string(dir.path().join("r.full.diff")).unwrap();
    let (_, diff, _) = run(&[&["--full"][..], &pair].concat());
    assert!(full.len() > 1_000_000 && full.contains("mac_reg"));
    assert_eq!(full, diff);
    // A report that fits is whole, with nothing beside it.
    let fits = dir.path().join("fits.md");
    let (code, _, _) = run(&[&["report", "-o", fits.to_str().unwrap()][..], &pair].concat());
    assert_eq!(code, 1);
    let md = std::fs::read_to_string(&fits).unwrap();
    assert!(
        !md.contains("Trimmed")
            && md.contains("(198822 bytes in the stream, 33232 fields; --full lists them)")
    );
    assert!(!dir.path().join("fits.full.diff").exists());
}

#[test]
fn html_report_is_one_self_contained_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r.html");
    let (code, _, _) = run(&[
        "report",
        "--html",
        "-o",
        out.to_str().unwrap(),
        "pc10-stopped.mig",
        "pc10-running.mig",
    ]);
    assert_eq!(code, 1);
    let html = std::fs::read_to_string(out).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    // No external assets: nothing fetched from anywhere; one inline script.
    for banned in ["<link", "<img", "src=", "http://", "https://"] {
        assert!(!html.contains(banned), "{banned}");
    }
    assert_eq!(html.matches("<script>").count(), 1);
    // A section per device, open when values changed, linked from the table.
    assert!(html.contains(
        "<details class=\"dev\" id=\"d-cpu--0-\" data-device=\"cpu (0)\" open>\
         <summary>[cpu (0)] version 12 <span class=\"muted\">"
    ));
    assert!(html.contains("<a href=\"#d-cpu--0-\">cpu (0)</a>"));
    // The changed words of a changed line are marked.
    assert!(html.contains(
        "<span class=\"ins\">+  env.eflags = <mark>0x0000000000000246</mark>  # rflags: \
         <mark>PF|ZF|IF</mark></span>"
    ));
    assert_eq!(
        html.matches("<details").count(),
        html.matches("</details>").count()
    );
    // A device on one side only is collapsed, and its summary says what it holds.
    let (_, html, _) = run(&["report", "--html", "pc10-stopped.mig", "pc10-smp2.mig"]);
    assert!(html.contains(
        "<details class=\"dev\" id=\"d-cpu--1-\" data-device=\"cpu (1)\"><summary>\
         [cpu (1)] version 12 <span class=\"ins\">only in new</span> \
         (1873 bytes in the stream, 265 fields; --full lists them)"
    ));
}

#[test]
fn schema_only_on_two_dump_vmstate_files() {
    let (code, out, stderr) = run(&[
        "--schema-only",
        "vmstate-pc72-qemu72.json",
        "vmstate-pc72-qemu10.json",
    ]);
    // By default only what breaks forward migration fails: between QEMU 7.2 and 10.0 nothing
    // does for sure (QEMU 7.2 wrote no array lengths); what might is listed to check.
    assert_eq!(code, 0, "{stderr}");
    assert!(
        out.starts_with("migdiff: no differences; 49 not breaking\n"),
        "{out}"
    );
    assert!(
        out.contains("check   pciespscsi (0)/esp.drq_state: field added (field since v0, 1 byte)  [forward and backward undecided: "),
        "{out}"
    );
    // Every difference, with --fail-on any.
    let (code, out, _) = run(&[
        "--schema-only",
        "--fail-on",
        "any",
        "vmstate-pc72-qemu72.json",
        "vmstate-pc72-qemu10.json",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains(
            "schema  hpet (0)/num_timers_save: renamed from 'num_timers'  [identical on the wire]"
        ),
        "{out}"
    );
    // A device class only one QEMU has is reported, not an error.
    assert!(out.contains(": only in new ("), "{out}");
    // The same file against itself: nothing.
    let (code, out, _) = run(&[
        "--schema-only",
        "vmstate-pc72-qemu10.json",
        "vmstate-pc72-qemu10.json",
    ]);
    assert_eq!((code, out.as_str()), (0, ""));
    // Without --schema-only such a file is refused with the reason.
    let (code, _, stderr) = run(&["vmstate-pc72-qemu72.json", "vmstate-pc72-qemu10.json"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("compare two of them with --schema-only"),
        "{stderr}"
    );
}

#[test]
fn schema_only_on_dumps_ignores_values() {
    // Stopped against running: every value differs, the description does not. Only the
    // subsection sent once SeaBIOS has run SMM remains, and it does not break forward.
    let (code, out, _) = run(&["--schema-only", "pc10-stopped.mig", "pc10-running.mig"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "migdiff: no differences; 1 not breaking\n")
    );
    let (code, out, _) = run(&[
        "--schema-only",
        "--fail-on",
        "any",
        "pc10-stopped.mig",
        "pc10-running.mig",
    ]);
    assert_eq!(code, 1);
    assert!(out.starts_with("migdiff: 1 difference: 1 schema\nschema  cpu (0)/cpu/msr_smi_count: subsection only in new  [backward undecided: "), "{out}");
    assert!(
        out.contains("+  cpu/msr_smi_count/env.msr_smi_count = (uint64, 8 bytes)"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "--schema-only",
        "--fail-on",
        "any",
        "--format",
        "summary",
        "pc72-qemu72.mig",
        "pc72-qemu10.mig",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.ends_with("hpet (0)                0       1       0     0\n5 differences: 5 schema\n"),
        "{out}"
    );
}
