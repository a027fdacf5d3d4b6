//! A tiny builder of synthetic migration streams, for what QEMU will not write: corrupt,
//! truncated or oddly laid out streams. Real dumps live in testdata/.
#![allow(dead_code)] // each test binary uses a different part

pub struct StreamBuilder {
    pub buf: Vec<u8>,
    devices: Vec<String>,
    next_id: u32,
    footers: bool,
}

impl StreamBuilder {
    /// QEVM header and a configuration section naming `machine`.
    pub fn new(machine: &str) -> Self {
        let mut buf = b"QEVM\0\0\0\x03".to_vec();
        buf.push(0x07);
        buf.extend_from_slice(&(machine.len() as u32).to_be_bytes());
        buf.extend_from_slice(machine.as_bytes());
        StreamBuilder {
            buf,
            devices: Vec::new(),
            next_id: 0,
            footers: true,
        }
    }

    /// Sections without 0x7e footers, as Xen and machine types <= 2.3 write them.
    pub fn without_footers(mut self) -> Self {
        self.footers = false;
        self
    }

    fn section_header(&mut self, ty: u8, idstr: &str, instance: u32, version: u32) -> u32 {
        let id = self.next_id;
        self.next_id += 1;
        self.buf.push(ty);
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.push(idstr.len() as u8);
        self.buf.extend_from_slice(idstr.as_bytes());
        self.buf.extend_from_slice(&instance.to_be_bytes());
        self.buf.extend_from_slice(&version.to_be_bytes());
        id
    }

    pub fn footer(mut self, id: u32) -> Self {
        if !self.footers {
            return self;
        }
        self.buf.push(0x7e);
        self.buf.extend_from_slice(&id.to_be_bytes());
        self
    }

    /// A RAM section with one block of `pages` zero pages: START (block list), one PART
    /// (the pages), END (just EOS).
    pub fn ram(mut self, block: &str, pages: u64) -> Self {
        let id = self.section_header(0x01, "ram", 0, 4);
        let len = pages * 4096;
        self.buf.extend_from_slice(&(len | 0x04).to_be_bytes());
        self.buf.push(block.len() as u8);
        self.buf.extend_from_slice(block.as_bytes());
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(&0x10u64.to_be_bytes());
        self = self.footer(id);
        self.buf.push(0x02);
        self.buf.extend_from_slice(&id.to_be_bytes());
        for page in 0..pages {
            let cont = if page == 0 { 0 } else { 0x20 };
            self.buf
                .extend_from_slice(&((page * 4096) | 0x02 | cont).to_be_bytes());
            if page == 0 {
                self.buf.push(block.len() as u8);
                self.buf.extend_from_slice(block.as_bytes());
            }
            self.buf.push(0);
        }
        self.buf.extend_from_slice(&0x10u64.to_be_bytes());
        self = self.footer(id);
        self.buf.push(0x03);
        self.buf.extend_from_slice(&id.to_be_bytes());
        self.buf.extend_from_slice(&0x10u64.to_be_bytes());
        self.footer(id)
    }

    /// A RAM section with one block of one page holding `page` (4096 bytes).
    pub fn ram_page(mut self, block: &str, page: &[u8; 4096]) -> Self {
        let id = self.section_header(0x01, "ram", 0, 4);
        self.buf.extend_from_slice(&(4096u64 | 0x04).to_be_bytes());
        self.buf.push(block.len() as u8);
        self.buf.extend_from_slice(block.as_bytes());
        self.buf.extend_from_slice(&4096u64.to_be_bytes());
        self.buf.extend_from_slice(&0x08u64.to_be_bytes());
        self.buf.push(block.len() as u8);
        self.buf.extend_from_slice(block.as_bytes());
        self.buf.extend_from_slice(page);
        self.buf.extend_from_slice(&0x10u64.to_be_bytes());
        self.footer(id)
    }

    /// A FULL section: `body` bytes, described by the JSON field list `fields`, then a footer.
    pub fn device(mut self, idstr: &str, instance: u32, fields: &str, body: &[u8]) -> Self {
        let id = self.section_header(0x04, idstr, instance, 1);
        self.buf.extend_from_slice(body);
        self.devices.push(format!(
            r#"{{"name": "{idstr}", "instance_id": {instance}, "vmsd_name": "{idstr}", "version": 1, "fields": [{fields}]}}"#
        ));
        self.footer(id)
    }

    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.buf.extend_from_slice(bytes);
        self
    }

    /// The vmdesc JSON of the devices added so far.
    pub fn json(&self) -> String {
        format!(
            r#"{{"page_size": 4096, "devices": [{}]}}"#,
            self.devices.join(", ")
        )
    }

    /// EOF and no vmdesc (as with suppress-vmdesc=on).
    pub fn finish_without_vmdesc(mut self) -> Vec<u8> {
        self.buf.push(0x00);
        self.buf
    }

    /// EOF, then the vmdesc trailer with `json`.
    pub fn finish_with_json(mut self, json: &str) -> Vec<u8> {
        self.buf.push(0x00);
        self.buf.push(0x06);
        self.buf
            .extend_from_slice(&(json.len() as u32).to_be_bytes());
        self.buf.extend_from_slice(json.as_bytes());
        self.buf
    }

    /// EOF, then the vmdesc of the devices added.
    pub fn finish(self) -> Vec<u8> {
        let json = self.json();
        self.finish_with_json(&json)
    }
}

/// The `timer` device as QEMU describes it, with its 24-byte body.
pub const TIMER_FIELDS: &str = r#"{"name": "cpu_ticks_offset", "type": "int64", "size": 8},
    {"name": "unused", "type": "unused_buffer", "size": 8},
    {"name": "cpu_clock_offset", "type": "int64", "size": 8}"#;
