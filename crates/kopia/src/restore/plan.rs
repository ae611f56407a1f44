//! Building a [`RestorePlan`]: walk directories, resolve chunk lists, check the target.

use std::path::PathBuf;

use futures::{StreamExt, TryStreamExt};

use super::{
    Attributes, PlannedDir, PlannedFile, PlannedSymlink, RestoreOptions, RestorePlan, RestoreStats,
    RestoreTarget,
};
use crate::error::{Corruption, Error, Unsupported};
use crate::ids::ObjectId;
use crate::object::{Chunk, flatten};
use crate::repository::{Indexed, Repository};
use crate::snapshot::{DirEntry, EntryType};

/// Directory objects (and indirect lists) read concurrently while planning.
const PLAN_PARALLELISM: usize = 16;

/// Kopia replaces a non-root directory's mtime and size with its summary's `maxTime` and `size`
/// when loading the parent (`snapshotfs` `dirEntryFromSummary`).
pub(super) fn effective_child(mut e: DirEntry) -> DirEntry {
    if e.entry_type == EntryType::Directory
        && let Some(s) = &e.summary
    {
        e.mtime = s.max_time;
        e.size = s.size;
    }
    e
}

fn check_name(dir: ObjectId, name: &str) -> Result<(), Error> {
    if name.is_empty() || name == "." || name == ".." || name.contains('/') || name.contains('\0') {
        return Err(Error::CorruptObject {
            object_id: dir,
            cause: Corruption::Malformed {
                what: "directory entry name",
            },
        });
    }
    Ok(())
}

struct FileStub {
    path: PathBuf,
    entry: DirEntry,
}

pub(super) async fn plan<T: RestoreTarget>(
    repo: &Repository<Indexed>,
    root: &DirEntry,
    target: &T,
    opts: &RestoreOptions,
) -> Result<RestorePlan, Error> {
    let mut dirs = Vec::new();
    let mut stubs = Vec::new();
    let mut symlinks = Vec::new();
    match &root.entry_type {
        EntryType::Directory => {
            dirs.push(PlannedDir {
                path: PathBuf::new(),
                depth: 0,
                attrs: Attributes::of(root),
            });
            let mut level: Vec<(PathBuf, ObjectId)> = vec![(PathBuf::new(), root.object_id)];
            let mut depth = 0;
            while !level.is_empty() {
                depth += 1;
                let listings: Vec<(PathBuf, ObjectId, crate::snapshot::Directory)> =
                    futures::stream::iter(level)
                        .map(|(p, oid)| async move {
                            repo.read_directory(oid).await.map(|d| (p, oid, d))
                        })
                        .buffered(PLAN_PARALLELISM)
                        .try_collect()
                        .await?;
                let mut next = Vec::new();
                for (parent, dir_oid, listing) in listings {
                    for e in listing.entries {
                        check_name(dir_oid, &e.name)?;
                        let path = parent.join(&e.name);
                        match &e.entry_type {
                            EntryType::Directory => {
                                let e = effective_child(e);
                                next.push((path.clone(), e.object_id));
                                dirs.push(PlannedDir {
                                    path,
                                    depth,
                                    attrs: Attributes::of(&e),
                                });
                            }
                            EntryType::File => stubs.push(FileStub { path, entry: e }),
                            EntryType::Symlink => symlinks.push(PlannedSymlink {
                                path,
                                object_id: e.object_id,
                                attrs: Attributes::of(&e),
                            }),
                            EntryType::Other(t) => {
                                return Err(Unsupported::EntryType(t.clone()).into());
                            }
                        }
                    }
                }
                level = next;
            }
        }
        EntryType::File => stubs.push(FileStub {
            path: PathBuf::new(),
            entry: root.clone(),
        }),
        EntryType::Symlink => symlinks.push(PlannedSymlink {
            path: PathBuf::new(),
            object_id: root.object_id,
            attrs: Attributes::of(root),
        }),
        EntryType::Other(t) => return Err(Unsupported::EntryType(t.clone()).into()),
    }

    let contents = repo.contents();
    let skip_existing = opts.skip_existing;
    let files: Vec<PlannedFile> = futures::stream::iter(stubs)
        .map(|stub| async move {
            let size = u64::try_from(stub.entry.size).unwrap_or(0);
            let skip = skip_existing && target.is_up_to_date(&stub.path, size, stub.entry.mtime);
            let chunks = if skip || size == 0 {
                Vec::new()
            } else if stub.entry.object_id.indirection() == 0 {
                vec![Chunk {
                    start: 0,
                    length: size,
                    object_id: stub.entry.object_id,
                }]
            } else {
                let chunks = flatten(contents, stub.entry.object_id).await?;
                let total: u64 = chunks.iter().map(|c| c.length).sum();
                if total != size {
                    return Err(Error::CorruptObject {
                        object_id: stub.entry.object_id,
                        cause: Corruption::Length {
                            expected: size,
                            actual: total,
                        },
                    });
                }
                chunks
            };
            Ok::<_, Error>(PlannedFile {
                path: stub.path,
                size,
                object_id: stub.entry.object_id,
                chunks,
                attrs: Attributes::of(&stub.entry),
                skip,
            })
        })
        .buffered(PLAN_PARALLELISM)
        .try_collect()
        .await?;

    let mut totals = RestoreStats {
        dirs: dirs.len() as u64,
        symlinks: symlinks.len() as u64,
        ..Default::default()
    };
    for f in &files {
        if f.skip {
            totals.skipped_files += 1;
            totals.skipped_bytes += f.size;
        } else {
            totals.files += 1;
            totals.bytes += f.size;
            totals.chunks += f.chunks.len() as u64;
        }
    }
    Ok(RestorePlan {
        target: target.location(),
        dirs,
        files,
        symlinks,
        totals,
    })
}
