//! The top level of a migration stream (`migration/savevm.c`): the QEVM header, the
//! configuration section, START/PART/END/FULL sections with their 0x7e footers, COMMANDs,
//! EOF, and the vmdesc trailer. Produces a [`Dump`].
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

use std::collections::HashMap;

use crate::budget::Budget;
use crate::decode::Decoder;
use crate::error::{ErrorKind, ParseError, SectionRef};
use crate::iterative;
use crate::ram::{PageRecord, RamOptions, RamParser};
use crate::reader::Reader;
use crate::tree::{Command, Device, Dump, Node, StreamInfo, Struct, Value, Warning};
use crate::vmdesc::{self, DeviceDesc, Schema};

// From migration/savevm.h.
const QEMU_VM_FILE_MAGIC: u32 = 0x5145_564d;
const QEMU_VM_FILE_VERSION: u32 = 3;
const QEMU_VM_EOF: u8 = 0x00;
const QEMU_VM_SECTION_START: u8 = 0x01;
const QEMU_VM_SECTION_PART: u8 = 0x02;
const QEMU_VM_SECTION_END: u8 = 0x03;
const QEMU_VM_SECTION_FULL: u8 = 0x04;
const QEMU_VM_SUBSECTION: u8 = 0x05;
const QEMU_VM_CONFIGURATION: u8 = 0x07;
const QEMU_VM_COMMAND: u8 = 0x08;
const QEMU_VM_SECTION_FOOTER: u8 = 0x7e;

/// `enum qemu_vm_cmd` names, indexed by command number.
const COMMAND_NAMES: [&str; 12] = [
    "INVALID",
    "OPEN_RETURN_PATH",
    "PING",
    "POSTCOPY_ADVISE",
    "POSTCOPY_LISTEN",
    "POSTCOPY_RUN",
    "POSTCOPY_RAM_DISCARD",
    "PACKAGED",
    "ENABLE_COLO",
    "POSTCOPY_RESUME",
    "RECV_BITMAP",
    "SWITCHOVER_START",
];
const MIG_CMD_PACKAGED: u16 = 7;

const DEFAULT_PAGE_SIZE: u64 = 4096;

/// How often decoding reports its progress.
pub const PROGRESS_STEP: u64 = 8 << 20;

/// Decodes a whole stream. `desc` is used when the stream has no vmdesc of its own
/// (suppress-vmdesc=on, postcopy).
pub fn decode(data: &[u8], desc: Option<&Schema>) -> Result<Dump, ParseError> {
    decode_with_progress(data, desc, &mut |_| {})
}

/// [`decode`], calling `progress(offset)` each time another [`PROGRESS_STEP`] bytes are
/// decoded: for progress bars, and to let the caller release input it will not read again.
pub fn decode_with_progress(
    data: &[u8],
    desc: Option<&Schema>,
    progress: &mut dyn FnMut(u64),
) -> Result<Dump, ParseError> {
    walk(data, desc, progress, false).map(|(dump, _)| dump)
}

/// [`decode`], also returning where every RAM page with contents sits in `data`.
pub fn decode_with_page_records(
    data: &[u8],
    desc: Option<&Schema>,
) -> Result<(Dump, Vec<PageRecord>), ParseError> {
    walk(data, desc, &mut |_| {}, true)
}

fn walk(
    data: &[u8],
    desc: Option<&Schema>,
    progress: &mut dyn FnMut(u64),
    record_pages: bool,
) -> Result<(Dump, Vec<PageRecord>), ParseError> {
    let trailer = vmdesc::locate(data)?;
    let (stream_end, own) = match trailer {
        Some(t) => {
            let json = data.get(t.json_start..).unwrap_or_default();
            (t.marker, Some(vmdesc::parse(json, t.json_start as u64)?))
        }
        None => (data.len(), None),
    };
    let schema = own.as_ref().or(desc);
    let mut walker = Walker {
        r: Reader::new(data.get(..stream_end).unwrap_or_default()),
        schema,
        descs: schema
            .map(|s| {
                s.devices
                    .iter()
                    .map(|d| ((d.idstr.as_str(), d.instance_id), d))
                    .collect()
            })
            .unwrap_or_default(),
        dump: Dump {
            machine: None,
            capabilities: Vec::new(),
            uuid: None,
            page_size: schema
                .and_then(|s| s.page_size)
                .unwrap_or(DEFAULT_PAGE_SIZE),
            devices: Vec::new(),
            ram: Vec::new(),
            stream: StreamInfo {
                size: data.len() as u64,
                footers: true,
                commands: Vec::new(),
                ram_chunks: 0,
                vmdesc_len: trailer.map(|t| (data.len() - t.json_start) as u64),
                ram_instance: None,
            },
            warnings: Vec::new(),
            classes: None,
        },
        footers_seen: None,
        ram: None,
        record_pages,
        ram_key: None,
        others: Vec::new(),
        iterative: HashMap::new(),
        stream: data.get(..stream_end).unwrap_or_default(),
        budget: Budget::nodes(data.len() as u64),
        progress: Progress {
            report: progress,
            next: PROGRESS_STEP,
        },
    };
    walker.walk()?;
    let mut page_records = Vec::new();
    for other in std::mem::take(&mut walker.others) {
        let mut device = other.device;
        device.body = other.state.finish(&device.idstr);
        walker.dump.devices.push(device);
    }
    if let Some(mut ram) = walker.ram.take() {
        page_records = ram.page_records();
        let (blocks, warnings) = ram.finish();
        walker.dump.ram = blocks;
        let section = walker.ram_key.take();
        for mut w in warnings {
            w.section = section.clone();
            walker.dump.warnings.push(w);
        }
    }
    Ok((walker.dump, page_records))
}

struct Walker<'a, 's> {
    r: Reader<'a>,
    schema: Option<&'s Schema>,
    descs: HashMap<(&'s str, u32), &'s DeviceDesc>,
    dump: Dump,
    /// Footer mode, settled by the first section: Some(true) once a footer was seen.
    footers_seen: Option<bool>,
    ram: Option<RamParser<'a>>,
    /// Keep the RAM parser's page records (for rewriting the stream).
    record_pages: bool,
    /// The RAM section's name and instance, for the warnings its pages leave.
    ram_key: Option<SectionRef>,
    /// The other iterative sections, in stream order: each becomes a device of the tree.
    others: Vec<Other>,
    /// Iterative sections by section id (only "ram" is decodable).
    iterative: HashMap<u32, SectionRef>,
    /// The stream the reader reads: RAM reads XBZRLE bases and mapped-ram pages from it.
    stream: &'a [u8],
    /// Nodes the whole decode may build.
    budget: Budget,
    progress: Progress<'s>,
}

/// An iterative section other than RAM: its device (body filled in at the end) and state.
struct Other {
    device: Device,
    state: iterative::Section,
}

/// Calls `report` at most once per [`PROGRESS_STEP`] bytes.
struct Progress<'p> {
    report: &'p mut dyn FnMut(u64),
    next: u64,
}

impl Progress<'_> {
    fn tick(&mut self, offset: u64) {
        if offset >= self.next {
            (self.report)(offset);
            self.next = offset + PROGRESS_STEP;
        }
    }
}

impl<'a, 's> Walker<'a, 's> {
    fn walk(&mut self) -> Result<(), ParseError> {
        self.read_header()?;
        loop {
            let at = self.r.offset();
            self.progress.tick(at);
            match self.r.u8("section type")? {
                QEMU_VM_EOF => break,
                QEMU_VM_CONFIGURATION => self.read_configuration()?,
                t @ (QEMU_VM_SECTION_START | QEMU_VM_SECTION_FULL) => {
                    self.read_full_header(t, at)?
                }
                QEMU_VM_SECTION_PART | QEMU_VM_SECTION_END => self.read_part(at)?,
                QEMU_VM_COMMAND => self.read_command(at)?,
                t => return Err(ParseError::new(at, ErrorKind::UnknownSectionType(t))),
            }
        }
        self.dump.stream.footers = self.footers_seen.unwrap_or(true);
        if !self.r.is_empty() {
            self.warn(
                self.r.offset(),
                None,
                format!(
                    "{} bytes after the EOF marker were ignored",
                    self.r.remaining()
                ),
            );
        }
        Ok(())
    }

    fn warn(&mut self, offset: u64, section: Option<SectionRef>, message: String) {
        self.dump.warnings.push(Warning {
            offset,
            section,
            message,
        });
    }

    fn read_header(&mut self) -> Result<(), ParseError> {
        let magic = self.r.be32("file magic")?;
        if magic != QEMU_VM_FILE_MAGIC {
            return Err(ParseError::new(0, ErrorKind::BadMagic(magic)));
        }
        let version = self.r.be32("file version")?;
        if version != QEMU_VM_FILE_VERSION {
            return Err(ParseError::new(4, ErrorKind::UnsupportedVersion(version)));
        }
        Ok(())
    }

    /// The configuration section: decoded through the vmdesc `configuration` entry when the
    /// stream has one (QEMU >= 8.2), else through its fixed layout.
    fn read_configuration(&mut self) -> Result<(), ParseError> {
        let section = SectionRef {
            idstr: "configuration".into(),
            instance_id: 0,
        };
        let body = match self.schema.and_then(|s| s.configuration.as_ref()) {
            Some(desc) => {
                let mut decoder = Decoder::new(&mut self.r, &mut self.budget);
                let body = decoder
                    .decode_struct(desc, "", 0)
                    .map_err(|e| e.in_section(&section))?;
                self.dump.warnings.extend(decoder.warnings);
                body
            }
            None => read_legacy_configuration(&mut self.r).map_err(|e| e.in_section(&section))?,
        };
        for node in &body.fields {
            if let (true, Value::Bytes(name)) = (node.name == "name", &node.value) {
                self.dump.machine = Some(String::from_utf8_lossy(name).into_owned());
            }
        }
        for sub in &body.subsections {
            for node in &sub.body.fields {
                collect_text(&node.value, &mut self.dump.capabilities);
            }
            if sub.body.vmsd_name == "configuration/uuid" {
                // 16 bytes: a buffer in the fixed layout, a uint8 array in a vmdesc.
                let bytes: Vec<u8> = match sub.body.fields.first().map(|n| &n.value) {
                    Some(Value::Bytes(b)) => b.clone(),
                    Some(Value::Scalars(s)) if s.size() == 1 => {
                        s.values().map(|v| v as u8).collect()
                    }
                    _ => Vec::new(),
                };
                self.dump.uuid = Some(format_uuid(&bytes));
            }
            if let Some(bits) = sub.body.fields.iter().find_map(|n| match n.value {
                Value::Uint { value, .. } if n.name == "target_page_bits" => Some(value),
                _ => None,
            }) {
                self.dump.page_size = 1u64
                    .checked_shl(u32::try_from(bits).unwrap_or(64))
                    .unwrap_or(0);
            }
        }
        Ok(())
    }

    /// START or FULL: the full section header, then the section's data.
    fn read_full_header(&mut self, ty: u8, at: u64) -> Result<(), ParseError> {
        let section_id = self.r.be32("section id")?;
        let idstr = self.r.counted_str("section idstr")?;
        let instance_id = self.r.be32("instance id")?;
        let version_id = self.r.be32("version id")?;
        let key = SectionRef { idstr, instance_id };
        if ty == QEMU_VM_SECTION_START && key.idstr != "ram" {
            return self.start_other(section_id, key, version_id, at);
        }
        if ty == QEMU_VM_SECTION_START {
            if version_id != 4 {
                return Err(ParseError::new(
                    at,
                    ErrorKind::Unsupported(format!("RAM section version {version_id}, expected 4")),
                )
                .in_section(&key));
            }
            self.dump.stream.ram_instance = Some(instance_id);
            self.iterative.insert(section_id, key.clone());
            self.read_ram_chunk(section_id, &key)?;
            return Ok(());
        }
        let desc = self.find_desc(&key, at)?;
        let mut decoder = Decoder::new(&mut self.r, &mut self.budget);
        let body = decoder
            .decode_struct(&desc.body, "", 0)
            .map_err(|e| e.in_section(&key))?;
        let last_field = decoder.last_field.take();
        let warnings = decoder.warnings;
        for mut w in warnings {
            w.section = Some(key.clone());
            self.dump.warnings.push(w);
        }
        self.read_footer(section_id, last_field)
            .map_err(|e| e.in_section(&key))?;
        self.dump.devices.push(Device {
            idstr: key.idstr,
            instance_id,
            section_id,
            version_id,
            offset: at,
            len: self.r.offset() - at,
            body,
        });
        Ok(())
    }

    fn find_desc(&self, key: &SectionRef, at: u64) -> Result<&'s DeviceDesc, ParseError> {
        let Some(_) = self.schema else {
            return Err(ParseError::new(at, ErrorKind::NoVmdesc).in_section(key));
        };
        self.descs
            .get(&(key.idstr.as_str(), key.instance_id))
            .copied()
            .ok_or_else(|| ParseError::new(at, ErrorKind::NoDescription).in_section(key))
    }

    fn read_part(&mut self, at: u64) -> Result<(), ParseError> {
        let section_id = self.r.be32("section id")?;
        if let Some(index) = self
            .others
            .iter()
            .position(|o| o.device.section_id == section_id)
        {
            return self.read_other_chunk(index, false);
        }
        let key = self
            .iterative
            .get(&section_id)
            .cloned()
            .ok_or_else(|| ParseError::new(at, ErrorKind::UnknownSectionId(section_id)))?;
        self.read_ram_chunk(section_id, &key)
    }

    /// The START chunk of an iterative section other than RAM (see [`iterative`]).
    fn start_other(
        &mut self,
        section_id: u32,
        key: SectionRef,
        version_id: u32,
        at: u64,
    ) -> Result<(), ParseError> {
        let Some(state) = iterative::Section::new(&key.idstr, version_id, self.stream.len() as u64)
        else {
            let kind = match iterative::SECTIONS.iter().find(|(n, _)| *n == key.idstr) {
                Some((_, v)) => ErrorKind::Unsupported(format!(
                    "{} section version {version_id}, expected {v}",
                    key.idstr
                )),
                None => ErrorKind::UnsupportedSection,
            };
            return Err(ParseError::new(at, kind).in_section(&key));
        };
        self.others.push(Other {
            device: Device {
                idstr: key.idstr,
                instance_id: key.instance_id,
                section_id,
                version_id,
                offset: at,
                len: 0,
                body: Struct {
                    vmsd_name: String::new(),
                    version: None,
                    minimum_version: None,
                    fields: Vec::new(),
                    subsections: Vec::new(),
                },
            },
            state,
        });
        self.read_other_chunk(self.others.len() - 1, true)
    }

    fn read_other_chunk(&mut self, index: usize, first: bool) -> Result<(), ParseError> {
        let start = self.r.offset();
        let Some(other) = self.others.get_mut(index) else {
            return Ok(());
        };
        let key = SectionRef {
            idstr: other.device.idstr.clone(),
            instance_id: other.device.instance_id,
        };
        let section_id = other.device.section_id;
        other
            .state
            .read_chunk(&mut self.r, first)
            .map_err(|e| e.in_section(&key))?;
        self.read_footer(section_id, None)
            .map_err(|e| e.in_section(&key))?;
        if let Some(other) = self.others.get_mut(index) {
            other.device.len += self.r.offset() - start;
        }
        Ok(())
    }

    fn read_ram_chunk(&mut self, section_id: u32, key: &SectionRef) -> Result<(), ParseError> {
        if self.ram.is_none() {
            let opts = RamOptions {
                page_size: self.dump.page_size,
                ignore_shared: self
                    .dump
                    .capabilities
                    .iter()
                    .any(|c| c == "x-ignore-shared"),
                mapped_ram: self.dump.capabilities.iter().any(|c| c == "mapped-ram"),
            };
            let at = self.r.offset();
            let mut parser =
                RamParser::new(opts, self.stream).map_err(|e| e.at(at).in_section(key))?;
            if self.record_pages {
                parser.record_pages();
            }
            self.ram = Some(parser);
            self.ram_key = Some(key.clone());
        }
        if let Some(ram) = self.ram.as_mut() {
            let progress = &mut self.progress;
            ram.read_chunk(&mut self.r, &mut |offset| progress.tick(offset))
                .map_err(|e| e.in_section(key))?;
        }
        self.dump.stream.ram_chunks += 1;
        self.read_footer(section_id, None)
            .map_err(|e| e.in_section(key))
    }

    /// `0x7e be32 section_id`. Optional (machine types <= 2.3 and Xen send none), but once
    /// a stream has shown footers, a missing one means the section's data was misread.
    fn read_footer(
        &mut self,
        section_id: u32,
        last_field: Option<(String, u64)>,
    ) -> Result<(), ParseError> {
        let at = self.r.offset();
        match self.r.peek_u8() {
            Some(QEMU_VM_SECTION_FOOTER) => {
                self.r.u8("footer")?;
                let found = self.r.be32("footer section id")?;
                if found != section_id {
                    return Err(ParseError::new(
                        at,
                        ErrorKind::FooterMismatch {
                            expected: section_id,
                            found,
                        },
                    ));
                }
                self.footers_seen = Some(true);
                Ok(())
            }
            None => Err(self.r.error(ErrorKind::Truncated {
                what: "section footer",
                need: 5,
                left: 0,
            })),
            Some(found) if self.footers_seen == Some(true) => Err(ParseError::new(
                at,
                ErrorKind::MissingFooter { found, last_field },
            )),
            Some(_) => {
                if self.footers_seen.is_none() {
                    self.warn(at, None, "stream has no section footers (Xen or machine type <= 2.3): desyncs are detected later".into());
                }
                self.footers_seen = Some(false);
                Ok(())
            }
        }
    }

    /// `be16 cmd, be16 len, payload`: recorded and skipped by its length.
    fn read_command(&mut self, at: u64) -> Result<(), ParseError> {
        let cmd = self.r.be16("command")?;
        let len = self.r.be16("command length")?;
        self.r.bytes(u64::from(len), "command payload")?;
        let name = COMMAND_NAMES
            .get(usize::from(cmd))
            .filter(|_| cmd != 0)
            .map_or_else(|| format!("UNKNOWN({cmd})"), |n| (*n).to_string());
        if cmd == MIG_CMD_PACKAGED {
            return Err(ParseError::new(
                at,
                ErrorKind::Unsupported(
                    "MIG_CMD_PACKAGED (a postcopy stream nested in a command)".into(),
                ),
            ));
        }
        if name.starts_with("UNKNOWN") {
            self.warn(
                at,
                None,
                format!("unknown command {cmd} ({len} bytes) skipped"),
            );
        }
        self.dump.stream.commands.push(Command {
            offset: at,
            cmd,
            name,
            len,
        });
        Ok(())
    }
}

/// `8-4-4-4-12` hex digits, as `-uuid` takes it.
fn format_uuid(bytes: &[u8]) -> String {
    let hex = crate::hex::encode(bytes);
    let mut out = String::with_capacity(36);
    for (i, c) in hex.chars().enumerate() {
        if matches!(i, 8 | 12 | 16 | 20) {
            out.push('-');
        }
        out.push(c);
    }
    out
}

fn collect_text(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Text(t) => out.push(t.clone()),
        Value::Array(items) => items.iter().for_each(|n| collect_text(&n.value, out)),
        _ => {}
    }
}

/// The configuration layout of `savevm.c:vmstate_configuration`, for streams whose vmdesc
/// predates its `configuration` entry (QEMU < 8.2): `be32 len, name`, then subsections.
fn read_legacy_configuration(r: &mut Reader<'_>) -> Result<Struct, ParseError> {
    let start = r.offset();
    let len = r.be32("machine name length")?;
    let name = r.bytes(u64::from(len), "machine name")?;
    let fields = vec![
        uint_node("len", start, u64::from(len), 4),
        Node {
            name: "name".into(),
            type_name: "buffer".into(),
            offset: start + 4,
            len: u64::from(len),
            value: Value::Bytes(name.to_vec()),
        },
    ];
    let mut subsections = Vec::new();
    while r.peek_u8() == Some(QEMU_VM_SUBSECTION) {
        let offset = r.offset();
        r.u8("subsection marker")?;
        let sub = r.counted_str("subsection name")?;
        let version = r.be32("subsection version")?;
        let at = r.offset();
        let fields = match sub.as_str() {
            "configuration/target-page-bits" => {
                vec![uint_node(
                    "target_page_bits",
                    at,
                    u64::from(r.be32("target page bits")?),
                    4,
                )]
            }
            "configuration/capabilities" => {
                let count = r.be32("capability count")?;
                let mut caps = Vec::new();
                for _ in 0..count {
                    let cap_at = r.offset();
                    let cap = r.counted_str("capability")?;
                    caps.push(Node {
                        name: String::new(),
                        type_name: "capability".into(),
                        offset: cap_at,
                        len: r.offset() - cap_at,
                        value: Value::Text(cap),
                    });
                }
                vec![
                    uint_node("caps_count", at, u64::from(count), 4),
                    Node {
                        name: "capabilities".into(),
                        type_name: "capability".into(),
                        offset: at + 4,
                        len: r.offset() - at - 4,
                        value: Value::Array(caps),
                    },
                ]
            }
            "configuration/uuid" => vec![Node {
                name: "uuid".into(),
                type_name: "buffer".into(),
                offset: at,
                len: 16,
                value: Value::Bytes(r.bytes(16, "uuid")?.to_vec()),
            }],
            other => {
                return Err(ParseError::new(
                    offset,
                    ErrorKind::Unsupported(format!("configuration subsection '{other}'")),
                ))
            }
        };
        subsections.push(crate::tree::Subsection {
            offset,
            body: Struct {
                vmsd_name: sub,
                version: Some(u64::from(version)),
                minimum_version: None,
                fields,
                subsections: Vec::new(),
            },
        });
    }
    Ok(Struct {
        vmsd_name: "configuration".into(),
        version: None,
        minimum_version: None,
        fields,
        subsections,
    })
}

fn uint_node(name: &str, offset: u64, value: u64, size: u8) -> Node {
    Node {
        name: name.into(),
        type_name: format!("uint{}", u32::from(size) * 8).into(),
        offset,
        len: u64::from(size),
        value: Value::Uint { value, size },
    }
}

/// Only the schema of the vmdesc at the end of `data`, for `--desc` taken from another dump.
pub fn schema_of(data: &[u8]) -> Result<Schema, ParseError> {
    let trailer = vmdesc::locate(data)?
        .ok_or_else(|| ParseError::new(data.len() as u64, ErrorKind::NoVmdesc))?;
    vmdesc::parse(
        data.get(trailer.json_start..).unwrap_or_default(),
        trailer.json_start as u64,
    )
}
