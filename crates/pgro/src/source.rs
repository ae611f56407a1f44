//! The source seam: everything the operator, the restore Job and `pgro wal-fetch` need from a backup
//! repository, whatever wrote it (Kopia, pgBackRest, barman-cloud, restic), behind one shape.

pub mod barman_source;
pub mod open;
pub mod pgbackrest_secret;
pub mod reader;
pub mod restic_source;
pub mod wal;
