//! A zip archive written front to back into any `Write`, so a download's first bytes leave while
//! later items are still being read (the `zip` crate needs `Seek`, which a network stream has not).
//! Following the PKWARE APPNOTE, each entry's CRC-32 and sizes come after its data in a data
//! descriptor (general purpose bit 3), and every size and offset is written in Zip64 form, so an
//! entry or archive past 4 GiB takes the same path as a small one. It keeps only what the central
//! directory needs (name, time, CRC-32, sizes, offset) per entry, never content, and never seeks.

use std::io::{self, Write};

use chrono::{DateTime, Datelike, Timelike, Utc};
use flate2::Compression;
use flate2::write::DeflateEncoder;

const LOCAL_HEADER: u32 = 0x0403_4b50;
const DATA_DESCRIPTOR: u32 = 0x0807_4b50;
const CENTRAL_HEADER: u32 = 0x0201_4b50;
const ZIP64_END: u32 = 0x0606_4b50;
const ZIP64_END_LOCATOR: u32 = 0x0706_4b50;
const END: u32 = 0x0605_4b50;

/// 4.5, the first version with Zip64.
const VERSION_NEEDED: u16 = 45;
/// Made on Unix (high byte 3), so the external attributes carry a Unix mode.
const VERSION_MADE_BY: u16 = (3 << 8) | VERSION_NEEDED;
/// Bit 3: CRC-32 and sizes follow the data. Bit 11: the name is UTF-8.
const FLAGS: u16 = (1 << 3) | (1 << 11);
const DEFLATE: u16 = 8;
const ZIP64_EXTRA_ID: u16 = 0x0001;
/// A classic 4-byte field that says "read the Zip64 field instead".
const SEE_ZIP64: u32 = u32::MAX;
/// A classic 2-byte count that says "read the Zip64 record instead".
const SEE_ZIP64_COUNT: u16 = u16::MAX;
/// A regular file, readable by all and writable by its owner once extracted.
const FILE_MODE: u32 = 0o100_644;
/// The Zip64 end record's length, not counting its signature and this length field.
const ZIP64_END_LENGTH: u64 = 44;

/// A zip being written into `W`. Entries are added whole with [`ZipStream::add_entry`];
/// [`ZipStream::finish`] writes the central directory.
pub struct ZipStream<W: Write> {
    out: Counted<W>,
    entries: Vec<EntryRecord>,
    /// An entry failed half-way: what was written is no zip, so nothing more may be added.
    broken: bool,
}

/// What the central directory says about one entry.
struct EntryRecord {
    name: String,
    time: DosTime,
    crc32: u32,
    compressed: u64,
    uncompressed: u64,
    /// Where its local header starts.
    offset: u64,
}

impl<W: Write> ZipStream<W> {
    pub fn new(out: W) -> Self {
        Self {
            out: Counted {
                inner: out,
                written: 0,
            },
            entries: Vec::new(),
            broken: false,
        }
    }

    /// Adds the entry `name` (a relative path with `/` between folders) whose content `fill`
    /// writes, deflated. `modified` is kept to the two seconds a zip can say; without it the
    /// entry says 1980-01-01. The entry is flushed to `W` once whole, so a reader waiting on a
    /// slow next item already holds everything before it. After an error the zip is unusable.
    pub fn add_entry<E: From<io::Error>>(
        &mut self,
        name: &str,
        modified: Option<DateTime<Utc>>,
        fill: impl FnOnce(&mut EntryWriter<'_, W>) -> Result<(), E>,
    ) -> Result<(), E> {
        self.usable()?;
        let name_length = u16::try_from(name.len()).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a zip entry name is at most 65535 bytes: {name}"),
            )
        })?;
        // Broken until the entry is whole: an error below leaves half an entry behind.
        self.broken = true;
        let time = DosTime::from(modified);
        let offset = self.out.written;
        self.write_local_header(name, name_length, time)?;
        let data_start = self.out.written;
        let (crc32, uncompressed) = {
            let mut entry = EntryWriter {
                encoder: DeflateEncoder::new(&mut self.out, Compression::default()),
                crc32: crc32fast::Hasher::new(),
                size: 0,
            };
            fill(&mut entry)?;
            entry.encoder.finish()?;
            (entry.crc32.finalize(), entry.size)
        };
        let record = EntryRecord {
            name: name.to_string(),
            time,
            crc32,
            compressed: self.out.written - data_start,
            uncompressed,
            offset,
        };
        self.write_data_descriptor(&record)?;
        self.out.flush()?;
        self.entries.push(record);
        self.broken = false;
        Ok(())
    }

    /// Writes the central directory and the end records, and hands back the writer (flushed).
    pub fn finish(mut self) -> io::Result<W> {
        self.usable()?;
        let directory_start = self.out.written;
        for entry in &self.entries {
            write_central_header(&mut self.out, entry)?;
        }
        let directory_size = self.out.written - directory_start;
        let zip64_end_start = self.out.written;
        let count = self.entries.len() as u64;
        let out = &mut self.out;
        put_u32(out, ZIP64_END)?;
        put_u64(out, ZIP64_END_LENGTH)?;
        put_u16(out, VERSION_MADE_BY)?;
        put_u16(out, VERSION_NEEDED)?;
        put_u32(out, 0)?; // this disk
        put_u32(out, 0)?; // the disk the central directory starts on
        put_u64(out, count)?; // entries on this disk
        put_u64(out, count)?; // entries in all
        put_u64(out, directory_size)?;
        put_u64(out, directory_start)?;

        put_u32(out, ZIP64_END_LOCATOR)?;
        put_u32(out, 0)?; // the disk the Zip64 end record is on
        put_u64(out, zip64_end_start)?;
        put_u32(out, 1)?; // disks in all

        // Every classic field points to the Zip64 record, so readers take one path whatever
        // the archive's size.
        put_u32(out, END)?;
        put_u16(out, 0)?; // this disk
        put_u16(out, 0)?; // the disk the central directory starts on
        put_u16(out, SEE_ZIP64_COUNT)?;
        put_u16(out, SEE_ZIP64_COUNT)?;
        put_u32(out, SEE_ZIP64)?;
        put_u32(out, SEE_ZIP64)?;
        put_u16(out, 0)?; // comment length
        out.flush()?;
        Ok(self.out.inner)
    }

    fn usable(&self) -> io::Result<()> {
        if self.broken {
            return Err(io::Error::other(
                "an earlier zip entry failed half-way; the zip cannot be continued",
            ));
        }
        Ok(())
    }

    fn write_local_header(
        &mut self,
        name: &str,
        name_length: u16,
        time: DosTime,
    ) -> io::Result<()> {
        let out = &mut self.out;
        put_u32(out, LOCAL_HEADER)?;
        put_u16(out, VERSION_NEEDED)?;
        put_u16(out, FLAGS)?;
        put_u16(out, DEFLATE)?;
        put_u16(out, time.time)?;
        put_u16(out, time.date)?;
        put_u32(out, 0)?; // CRC-32: in the data descriptor
        put_u32(out, SEE_ZIP64)?;
        put_u32(out, SEE_ZIP64)?;
        put_u16(out, name_length)?;
        put_u16(out, 4 + 16)?; // extra field length
        out.write_all(name.as_bytes())?;
        // Zip64 sizes of zero: the sizes come later, and its presence tells readers that the
        // data descriptor holds them in 8 bytes.
        put_u16(out, ZIP64_EXTRA_ID)?;
        put_u16(out, 16)?;
        put_u64(out, 0)?; // uncompressed size
        put_u64(out, 0) // compressed size
    }

    fn write_data_descriptor(&mut self, entry: &EntryRecord) -> io::Result<()> {
        let out = &mut self.out;
        put_u32(out, DATA_DESCRIPTOR)?;
        put_u32(out, entry.crc32)?;
        put_u64(out, entry.compressed)?;
        put_u64(out, entry.uncompressed)
    }
}

fn write_central_header<W: Write>(out: &mut W, entry: &EntryRecord) -> io::Result<()> {
    let name_length = u16::try_from(entry.name.len())
        .map_err(|_| io::Error::other("a zip entry name is at most 65535 bytes"))?;
    put_u32(out, CENTRAL_HEADER)?;
    put_u16(out, VERSION_MADE_BY)?;
    put_u16(out, VERSION_NEEDED)?;
    put_u16(out, FLAGS)?;
    put_u16(out, DEFLATE)?;
    put_u16(out, entry.time.time)?;
    put_u16(out, entry.time.date)?;
    put_u32(out, entry.crc32)?;
    put_u32(out, SEE_ZIP64)?; // compressed size
    put_u32(out, SEE_ZIP64)?; // uncompressed size
    put_u16(out, name_length)?;
    put_u16(out, 4 + 24)?; // extra field length
    put_u16(out, 0)?; // comment length
    put_u16(out, 0)?; // the disk the entry starts on
    put_u16(out, 0)?; // internal attributes
    put_u32(out, FILE_MODE << 16)?;
    put_u32(out, SEE_ZIP64)?; // local header offset
    out.write_all(entry.name.as_bytes())?;
    // In the APPNOTE's order: uncompressed size, compressed size, local header offset.
    put_u16(out, ZIP64_EXTRA_ID)?;
    put_u16(out, 24)?;
    put_u64(out, entry.uncompressed)?;
    put_u64(out, entry.compressed)?;
    put_u64(out, entry.offset)
}

/// Where an entry's content goes: deflated into the zip, counted and checksummed on the way.
pub struct EntryWriter<'a, W: Write> {
    encoder: DeflateEncoder<&'a mut Counted<W>>,
    crc32: crc32fast::Hasher,
    size: u64,
}

impl<W: Write> Write for EntryWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let taken = self.encoder.write(buf)?;
        let taken_bytes = buf.get(..taken).unwrap_or(buf);
        self.crc32.update(taken_bytes);
        self.size += taken_bytes.len() as u64;
        Ok(taken)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.encoder.flush()
    }
}

/// The writer below, with the count of bytes written so far: offsets without `Seek`.
struct Counted<W> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.written += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A time as MS-DOS kept it, in the fields zip headers carry (no zone; Skyvault writes UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct DosTime {
    time: u16,
    date: u16,
}

impl DosTime {
    /// 1980-01-01 00:00, the earliest a zip can say.
    const EARLIEST: Self = Self {
        time: 0,
        date: (1 << 5) | 1,
    };
}

impl From<Option<DateTime<Utc>>> for DosTime {
    fn from(time: Option<DateTime<Utc>>) -> Self {
        let Some(time) = time else {
            return Self::EARLIEST;
        };
        // Seven bits of years from 1980.
        let Ok(years) = u16::try_from(time.year() - 1980) else {
            return Self::EARLIEST;
        };
        if years > 127 {
            return Self::EARLIEST;
        }
        // Month, day, hour, minute and second/2 fit their fields by chrono's ranges.
        let field = |value: u32| u16::try_from(value).unwrap_or(0);
        Self {
            time: (field(time.hour()) << 11)
                | (field(time.minute()) << 5)
                | field(time.second() / 2),
            date: (years << 9) | (field(time.month()) << 5) | field(time.day()),
        }
    }
}

fn put_u16<W: Write>(out: &mut W, value: u16) -> io::Result<()> {
    out.write_all(&value.to_le_bytes())
}

fn put_u32<W: Write>(out: &mut W, value: u32) -> io::Result<()> {
    out.write_all(&value.to_le_bytes())
}

fn put_u64<W: Write>(out: &mut W, value: u64) -> io::Result<()> {
    out.write_all(&value.to_le_bytes())
}

#[cfg(test)]
mod tests {
    use std::io::{self, Read, Write};

    use chrono::{DateTime, TimeZone, Utc};

    use super::{DosTime, ZipStream};

    /// A sink with no `Seek`: what a download's channel is.
    #[derive(Default)]
    struct WriteOnly(Vec<u8>);

    impl Write for WriteOnly {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn pseudo_random(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect()
    }

    fn modified() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 5, 14, 7, 9).unwrap()
    }

    /// Names and contents covering what downloads hold: folders, an empty item, a name that is
    /// not ASCII, text that compresses and bytes that do not (written in many pieces).
    fn sample() -> Vec<(&'static str, Vec<u8>)> {
        vec![
            (
                "Inbox/AAMkAD0001.eml",
                b"Subject: Quarterly report\r\n\r\nFrom here on.\r\n".repeat(40),
            ),
            ("empty.txt", Vec::new()),
            ("Documents/Übersicht – März 2024 ✓.txt", "Grüße".into()),
            ("Documents/video/big clip.mp4", pseudo_random(300_000)),
        ]
    }

    fn write_sample() -> Vec<u8> {
        let mut zip = ZipStream::new(WriteOnly::default());
        for (index, (name, content)) in sample().into_iter().enumerate() {
            let time = (index == 0).then(modified);
            zip.add_entry(name, time, |entry| -> io::Result<()> {
                for piece in content.chunks(7_000) {
                    entry.write_all(piece)?;
                }
                Ok(())
            })
            .unwrap();
        }
        zip.finish().unwrap().0
    }

    fn u16_at(bytes: &[u8], at: usize) -> u16 {
        u16::from_le_bytes(bytes[at..at + 2].try_into().unwrap())
    }

    fn u32_at(bytes: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap())
    }

    fn u64_at(bytes: &[u8], at: usize) -> u64 {
        u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap())
    }

    #[test]
    fn the_zip_crate_reads_every_entry_back_byte_exact() {
        let bytes = write_sample();
        let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes)).unwrap();
        let sample = sample();
        assert_eq!(archive.len(), sample.len());
        for (index, (name, content)) in sample.iter().enumerate() {
            let mut entry = archive.by_index(index).unwrap();
            assert_eq!(entry.name(), *name);
            assert_eq!(entry.compression(), zip::CompressionMethod::Deflated);
            assert_eq!(entry.unix_mode(), Some(0o100_644));
            let mut read = Vec::new();
            entry.read_to_end(&mut read).unwrap();
            assert!(read == *content, "{name} differs");
        }
        let first = archive.by_index(0).unwrap();
        let time = first.last_modified().unwrap();
        assert_eq!(
            (time.year(), time.month(), time.day()),
            (2024, 3, 5),
            "the entry's date"
        );
        assert_eq!((time.hour(), time.minute(), time.second()), (14, 7, 8));
        let compressed = first.compressed_size();
        assert!(compressed < first.size() / 4, "text is deflated");
    }

    #[test]
    fn python_zipfile_tests_and_reads_every_entry_back_byte_exact() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.zip");
        std::fs::write(&path, write_sample()).unwrap();
        let script = "import zipfile,sys\n\
                      z=zipfile.ZipFile(sys.argv[1])\n\
                      assert z.testzip() is None\n\
                      for i in z.infolist(): print(i.filename + '\\t' + z.read(i).hex())";
        let output = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&path)
            .env("PYTHONIOENCODING", "utf-8")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "python3 rejected the zip: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let listed = String::from_utf8(output.stdout).unwrap();
        let expected: String = sample()
            .iter()
            .map(|(name, content)| {
                let hex: String = content.iter().map(|b| format!("{b:02x}")).collect();
                format!("{name}\t{hex}\n")
            })
            .collect();
        assert!(listed == expected, "python3 read other names or bytes");
    }

    /// No entry here comes near 4 GiB, but every size and offset goes through the Zip64 fields
    /// anyway: the classic fields only point to them, so the zip crate reading the right values
    /// proves the Zip64 extra and end record are what a 20 GB download relies on.
    #[test]
    fn sizes_and_offsets_are_read_from_the_zip64_fields() {
        let bytes = write_sample();
        let mut archive = zip::ZipArchive::new(io::Cursor::new(bytes.clone())).unwrap();
        let mut next_header = 0;
        for (index, (name, content)) in sample().iter().enumerate() {
            let entry = archive.by_index(index).unwrap();
            assert_eq!(entry.size(), content.len() as u64, "{name}");
            assert_eq!(entry.header_start(), next_header, "{name}");

            let central = usize::try_from(entry.central_header_start()).unwrap();
            assert_eq!(u32_at(&bytes, central), 0x0201_4b50);
            assert_eq!(u16_at(&bytes, central + 8), 0x0808, "bits 3 and 11");
            assert_eq!(
                u32_at(&bytes, central + 20),
                u32::MAX,
                "classic compressed size"
            );
            assert_eq!(u32_at(&bytes, central + 24), u32::MAX, "classic size");
            assert_eq!(u32_at(&bytes, central + 42), u32::MAX, "classic offset");
            let extra = central + 46 + name.len();
            assert_eq!(u16_at(&bytes, extra), 0x0001, "Zip64 extra");
            assert_eq!(u64_at(&bytes, extra + 4), content.len() as u64);
            assert_eq!(u64_at(&bytes, extra + 12), entry.compressed_size());
            assert_eq!(u64_at(&bytes, extra + 20), entry.header_start());

            // The local header announces a data descriptor with 8-byte sizes.
            let local = usize::try_from(entry.header_start()).unwrap();
            assert_eq!(u32_at(&bytes, local), 0x0403_4b50);
            assert_eq!(u16_at(&bytes, local + 6), 0x0808, "bits 3 and 11");
            assert_eq!(u32_at(&bytes, local + 14), 0, "CRC-32 comes later");
            let local_extra = local + 30 + name.len();
            assert_eq!(u16_at(&bytes, local_extra), 0x0001, "Zip64 extra");
            assert_eq!(u16_at(&bytes, local_extra + 2), 16);

            let descriptor = usize::try_from(entry.data_start() + entry.compressed_size()).unwrap();
            assert_eq!(u32_at(&bytes, descriptor), 0x0807_4b50);
            assert_eq!(u32_at(&bytes, descriptor + 4), entry.crc32());
            assert_eq!(crc32fast::hash(content), entry.crc32());
            assert_eq!(u64_at(&bytes, descriptor + 8), entry.compressed_size());
            assert_eq!(u64_at(&bytes, descriptor + 16), content.len() as u64);
            next_header = entry.data_start() + entry.compressed_size() + 24;
        }
        assert_eq!(archive.central_directory_start(), next_header);

        // The classic end record points to the Zip64 one for the count, size and offset.
        let end = bytes.len() - 22;
        assert_eq!(u32_at(&bytes, end), 0x0605_4b50);
        assert_eq!(u16_at(&bytes, end + 10), u16::MAX);
        assert_eq!(u32_at(&bytes, end + 16), u32::MAX);
        let locator = end - 20;
        assert_eq!(u32_at(&bytes, locator), 0x0706_4b50);
        let zip64_end = usize::try_from(u64_at(&bytes, locator + 8)).unwrap();
        assert_eq!(u32_at(&bytes, zip64_end), 0x0606_4b50);
        assert_eq!(u64_at(&bytes, zip64_end + 32), sample().len() as u64);
        assert_eq!(u64_at(&bytes, zip64_end + 48), next_header);
    }

    #[test]
    fn an_empty_zip_is_a_zip() {
        let bytes = ZipStream::new(WriteOnly::default()).finish().unwrap().0;
        let archive = zip::ZipArchive::new(io::Cursor::new(bytes)).unwrap();
        assert_eq!(archive.len(), 0);
    }

    #[test]
    fn nothing_is_added_after_an_entry_failed_half_way() {
        let mut zip = ZipStream::new(WriteOnly::default());
        let failed = zip.add_entry("a.txt", None, |entry| -> io::Result<()> {
            entry.write_all(b"half")?;
            Err(io::Error::other("the repository went away"))
        });
        assert!(failed.is_err());
        assert!(
            zip.add_entry("b.txt", None, |_| -> io::Result<()> { Ok(()) })
                .is_err()
        );
        assert!(zip.finish().is_err());
    }

    #[test]
    fn times_outside_what_a_zip_can_say_become_1980() {
        assert_eq!(
            DosTime::from(Some(modified())),
            DosTime {
                time: (14 << 11) | (7 << 5) | 4,
                date: (44 << 9) | (3 << 5) | 5,
            }
        );
        assert_eq!(DosTime::from(None), DosTime::EARLIEST);
        let before = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(DosTime::from(Some(before)), DosTime::EARLIEST);
        let after = Utc.with_ymd_and_hms(2108, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(DosTime::from(Some(after)), DosTime::EARLIEST);
    }
}
