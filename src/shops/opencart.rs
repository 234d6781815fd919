//! Placeholder until the client lands.

use super::{PushError, Pushed, ShopUpdate};
use crate::config::ShopConfig;

pub struct OpenCart {
    _name: String,
}

impl OpenCart {
    pub fn new(cfg: &ShopConfig) -> Self {
        OpenCart {
            _name: cfg.name.clone(),
        }
    }

    pub async fn push(&self, _update: &ShopUpdate) -> Result<Pushed, PushError> {
        Err(PushError::permanent("not implemented"))
    }
}
