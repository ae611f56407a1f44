//! Objects: direct contents, legacy `Z` compressed contents and `I` indirect lists
//! (kopia `repo/object`), plus a seekable reader over a flattened chunk list.

use std::io::SeekFrom;
use std::sync::Arc;

use crate::compression::{DecompressError, decompress};
use crate::content::ContentReader;
use crate::error::{Corruption, Error};
use crate::ids::ObjectId;
use crate::repository::{Indexed, Repository};

/// Indirect lists nest at most this deep (kopia writes at most a few levels).
const MAX_INDIRECTION: u8 = 8;

#[derive(Debug, serde::Deserialize)]
struct IndirectList {
    stream: String,
    #[serde(default, deserialize_with = "crate::serde_util::null_as_default")]
    entries: Vec<IndirectEntry>,
}

#[derive(Debug, serde::Deserialize)]
struct IndirectEntry {
    #[serde(default)]
    s: i64,
    l: i64,
    o: ObjectId,
}

/// One direct piece of an object: `length` bytes at `start`, stored in object `object_id`
/// (a direct ID, possibly legacy-compressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    /// Offset of the chunk in the object.
    pub start: u64,
    /// Length of the chunk.
    pub length: u64,
    /// The direct object holding the chunk.
    pub object_id: ObjectId,
}

/// Reads a direct object: the content, plus legacy object-level decompression for `Z` IDs.
pub(crate) async fn read_direct(
    contents: &Arc<ContentReader>,
    oid: ObjectId,
    expected_len: Option<u64>,
) -> Result<Vec<u8>, Error> {
    let data = contents.read(&oid.content_id()).await?;
    finish_direct(oid, data, expected_len)
}

/// Applies `Z` decompression and the length check to a direct object's content bytes.
pub(crate) fn finish_direct(
    oid: ObjectId,
    data: Vec<u8>,
    expected_len: Option<u64>,
) -> Result<Vec<u8>, Error> {
    let data = if oid.is_compressed() {
        let hint = expected_len.map_or(0, |n| usize::try_from(n).unwrap_or(0));
        match decompress(&data, None, hint) {
            Ok(d) => d,
            Err(DecompressError::Corrupt(cause)) => {
                return Err(Error::CorruptObject {
                    object_id: oid,
                    cause,
                });
            }
            Err(DecompressError::Unsupported(u)) => return Err(u.into()),
        }
    } else {
        data
    };
    if let Some(n) = expected_len.filter(|&n| n != data.len() as u64) {
        return Err(Error::CorruptObject {
            object_id: oid,
            cause: Corruption::Length {
                expected: n,
                actual: data.len() as u64,
            },
        });
    }
    Ok(data)
}

/// Resolves an object into its direct chunks, in order. Direct objects yield one chunk whose
/// length is unknown until read (`u64::MAX`); indirect lists give exact lengths.
pub(crate) async fn flatten(
    contents: &Arc<ContentReader>,
    oid: ObjectId,
) -> Result<Vec<Chunk>, Error> {
    if oid.indirection() == 0 {
        return Ok(vec![Chunk {
            start: 0,
            length: u64::MAX,
            object_id: oid,
        }]);
    }
    let mut out = Vec::new();
    flatten_into(contents, oid, 0, &mut out).await?;
    Ok(out)
}

fn flatten_into<'a>(
    contents: &'a Arc<ContentReader>,
    oid: ObjectId,
    base: u64,
    out: &'a mut Vec<Chunk>,
) -> futures::future::BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move {
        if oid.indirection() > MAX_INDIRECTION {
            return Err(Error::CorruptObject {
                object_id: oid,
                cause: Corruption::Malformed {
                    what: "indirection depth",
                },
            });
        }
        let Some(list_oid) = oid.unwrap_indirect() else {
            return Err(Error::CorruptObject {
                object_id: oid,
                cause: Corruption::Malformed {
                    what: "not indirect",
                },
            });
        };
        let list_bytes = read_object_bytes(contents, list_oid).await?;
        let list: IndirectList =
            serde_json::from_slice(&list_bytes).map_err(|e| Error::CorruptObject {
                object_id: oid,
                cause: Corruption::Json(e),
            })?;
        if list.stream != "kopia:indirect" {
            return Err(Error::CorruptObject {
                object_id: oid,
                cause: Corruption::Malformed {
                    what: "indirect stream type",
                },
            });
        }
        let mut expected_start = 0u64;
        for e in list.entries {
            let (Ok(s), Ok(l)) = (u64::try_from(e.s), u64::try_from(e.l)) else {
                return Err(Error::CorruptObject {
                    object_id: oid,
                    cause: Corruption::Malformed {
                        what: "negative extent",
                    },
                });
            };
            if s != expected_start {
                return Err(Error::CorruptObject {
                    object_id: oid,
                    cause: Corruption::Malformed {
                        what: "non-contiguous extents",
                    },
                });
            }
            expected_start = s.saturating_add(l);
            if e.o.indirection() > 0 {
                let before = out.len();
                flatten_into(contents, e.o, base + s, out).await?;
                let got: u64 = out[before..].iter().map(|c| c.length).sum();
                if got != l {
                    return Err(Error::CorruptObject {
                        object_id: e.o,
                        cause: Corruption::Length {
                            expected: l,
                            actual: got,
                        },
                    });
                }
            } else {
                out.push(Chunk {
                    start: base + s,
                    length: l,
                    object_id: e.o,
                });
            }
        }
        Ok(())
    })
}

/// Reads a whole object into memory (directories, indirect lists, symlink targets, small files).
pub(crate) async fn read_object_bytes(
    contents: &Arc<ContentReader>,
    oid: ObjectId,
) -> Result<Vec<u8>, Error> {
    if oid.indirection() == 0 {
        return read_direct(contents, oid, None).await;
    }
    let chunks = flatten(contents, oid).await?;
    let mut out = Vec::new();
    for c in chunks {
        out.extend_from_slice(&read_direct(contents, c.object_id, Some(c.length)).await?);
    }
    Ok(out)
}

/// A seekable reader over an object. Loads one chunk at a time.
#[derive(Debug)]
pub struct ObjectReader {
    contents: Arc<ContentReader>,
    chunks: Vec<Chunk>,
    length: u64,
    pos: u64,
    current: Option<(usize, Vec<u8>)>,
}

impl ObjectReader {
    /// Total length of the object.
    pub fn len(&self) -> u64 {
        self.length
    }

    /// Whether the object is empty.
    pub fn is_empty(&self) -> bool {
        self.length == 0
    }

    /// Current position.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The object's chunks.
    pub fn chunks(&self) -> &[Chunk] {
        &self.chunks
    }

    /// Moves the position like `std::io::Seek` (positions past the end are allowed; reads return 0).
    ///
    /// # Errors
    ///
    /// [`std::io::ErrorKind::InvalidInput`] for a negative position.
    pub fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let new = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.length.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        self.pos = new.ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "negative position")
        })?;
        Ok(self.pos)
    }

    /// Reads up to `buf.len()` bytes at the current position; 0 at the end.
    ///
    /// # Errors
    ///
    /// Content read errors.
    pub async fn read(&mut self, buf: &mut [u8]) -> Result<usize, Error> {
        if self.pos >= self.length || buf.is_empty() {
            return Ok(0);
        }
        let idx = self
            .chunks
            .partition_point(|c| c.start + c.length <= self.pos);
        let Some(chunk) = self.chunks.get(idx).copied() else {
            return Ok(0);
        };
        if self.current.as_ref().is_none_or(|(i, _)| *i != idx) {
            let data = read_direct(&self.contents, chunk.object_id, Some(chunk.length)).await?;
            self.current = Some((idx, data));
        }
        let Some((_, data)) = &self.current else {
            return Ok(0);
        };
        let off = usize::try_from(self.pos - chunk.start).unwrap_or(usize::MAX);
        let avail = data.get(off..).unwrap_or_default();
        let n = avail.len().min(buf.len());
        buf[..n].copy_from_slice(&avail[..n]);
        self.pos += n as u64;
        Ok(n)
    }

    /// Reads everything from the current position to the end.
    ///
    /// # Errors
    ///
    /// Content read errors.
    pub async fn read_to_end(&mut self, out: &mut Vec<u8>) -> Result<usize, Error> {
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0;
        loop {
            let n = self.read(&mut buf).await?;
            if n == 0 {
                return Ok(total);
            }
            out.extend_from_slice(&buf[..n]);
            total += n;
        }
    }
}

impl Repository<Indexed> {
    /// Reads a whole object into memory.
    ///
    /// # Errors
    ///
    /// Content errors, or [`Error::CorruptObject`] for malformed indirect lists.
    pub async fn read_object(&self, oid: ObjectId) -> Result<Vec<u8>, Error> {
        read_object_bytes(self.contents(), oid).await
    }

    /// Opens a seekable reader. Indirect lists are resolved now; chunk data is read on demand.
    ///
    /// # Errors
    ///
    /// Errors reading the indirect lists or, for a direct object, its content.
    pub async fn open_object(&self, oid: ObjectId) -> Result<ObjectReader, Error> {
        let contents = Arc::clone(self.contents());
        let mut chunks = flatten(&contents, oid).await?;
        let mut current = None;
        if oid.indirection() == 0 {
            let data = read_direct(&contents, oid, None).await?;
            chunks[0].length = data.len() as u64;
            current = Some((0, data));
        }
        let length = chunks.last().map_or(0, |c| c.start + c.length);
        Ok(ObjectReader {
            contents,
            chunks,
            length,
            pos: 0,
            current,
        })
    }
}
