//! A tenant's bundles, stored by name: in the tenant with the memory store, in the database
//! with PostgreSQL.

use super::{Backend, Tenant};
use crate::error::ApiError;
use crate::sync;

impl Tenant {
    /// Stores bundles by name, replacing bundles of the same names.
    pub async fn put_bundles(&self, bundles: Vec<(String, Vec<u8>)>) -> Result<(), ApiError> {
        match &self.backend {
            Backend::Memory => {
                let mut stored = sync::write(&self.bundles);
                for (name, bytes) in bundles {
                    stored.insert(name, bytes);
                }
                Ok(())
            }
            Backend::Database(db) => db.put_bundles(self, bundles).await,
        }
    }

    /// The encoded bundle named `name`.
    pub async fn bundle(&self, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
        match &self.backend {
            Backend::Memory => {
                let stored = sync::read(&self.bundles);
                Ok(stored.get(name).cloned())
            }
            Backend::Database(db) => db.bundle(self, name).await,
        }
    }

    /// Deletes a bundle; a missing one is no error.
    pub async fn delete_bundle(&self, name: &str) -> Result<(), ApiError> {
        match &self.backend {
            Backend::Memory => {
                sync::write(&self.bundles).remove(name);
                Ok(())
            }
            Backend::Database(db) => db.delete_bundle(self, name).await,
        }
    }
}
