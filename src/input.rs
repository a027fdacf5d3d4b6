//! Reading a dump: a regular file is memory-mapped (no copy, so multi-GB dumps cost no
//! heap), a pipe or `-` is read into memory.

use std::fs::File;
use std::io::{self, Read};
use std::ops::Deref;
use std::path::Path;

use memmap2::Mmap;

/// The bytes of one input.
pub enum Input {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl Deref for Input {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Input::Mapped(m) => m,
            Input::Owned(v) => v,
        }
    }
}

impl Input {
    /// Opens `path`, or standard input for `-`.
    pub fn open(path: &Path) -> io::Result<Input> {
        if path.as_os_str() == "-" {
            let mut data = Vec::new();
            io::stdin().lock().read_to_end(&mut data)?;
            return Ok(Input::Owned(data));
        }
        let mut file = File::open(path)?;
        if file.metadata()?.is_file() {
            // SAFETY: the map is read-only; a dump rewritten while we read it can only make
            // us decode garbage, which the decoder reports as an error like any bad input.
            if let Ok(map) = unsafe { Mmap::map(&file) } {
                return Ok(Input::Mapped(map));
            }
        }
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok(Input::Owned(data))
    }
}
