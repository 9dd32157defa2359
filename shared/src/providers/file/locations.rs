//! [`LocationReader`] for local registration roots: every open goes
//! through [`open_beneath`] (`openat2` with `RESOLVE_BENEATH`).

use async_trait::async_trait;
use std::fs::File;
use std::path::PathBuf;

use super::beneath::{open_beneath, BeneathError};
use crate::domain::location::Root;
use crate::error::StoreError;
use crate::ports::{LocationReader, OpenLocationError};

/// Opens locations beneath local roots; S3 roots need the `s3` provider.
#[derive(Debug, Default, Clone, Copy)]
pub struct LocalLocationReader;

#[async_trait]
impl LocationReader for LocalLocationReader {
    async fn open(
        &self,
        root: &Root,
        rest: &str,
        _max_bytes: u64,
    ) -> Result<(File, u64), OpenLocationError> {
        let Root::Local(dir) = root else {
            return Err(
                StoreError::Unavailable("s3:// locations need the s3 provider".into()).into(),
            );
        };
        let dir = PathBuf::from(dir);
        let rest = rest.to_string();
        tokio::task::spawn_blocking(move || {
            let file = open_beneath(&dir, &rest).map_err(|e| match e {
                BeneathError::Escapes => OpenLocationError::Escapes,
                BeneathError::Unreadable => OpenLocationError::Unreadable,
            })?;
            let size = file
                .metadata()
                .map_err(|_| OpenLocationError::Unreadable)?
                .len();
            Ok((file, size))
        })
        .await
        .map_err(|e| OpenLocationError::Store(StoreError::Unavailable(e.to_string())))?
    }
}
