//! Placeholder until the client lands.

use super::{PushError, Pushed, ShopUpdate};
use crate::config::ShopConfig;

pub struct Magento2 {
    _name: String,
}

impl Magento2 {
    pub fn new(cfg: &ShopConfig) -> Self {
        Magento2 {
            _name: cfg.name.clone(),
        }
    }

    pub async fn push(&self, _update: &ShopUpdate) -> Result<Pushed, PushError> {
        Err(PushError::permanent("not implemented"))
    }
}
