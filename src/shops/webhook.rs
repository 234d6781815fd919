//! Placeholder until the client lands.

use super::{PushError, Pushed, ShopUpdate};
use crate::config::ShopConfig;

pub struct Webhook {
    _name: String,
}

impl Webhook {
    pub fn new(cfg: &ShopConfig) -> Self {
        Webhook {
            _name: cfg.name.clone(),
        }
    }

    pub async fn push(&self, _update: &ShopUpdate) -> Result<Pushed, PushError> {
        Err(PushError::permanent("not implemented"))
    }
}
