#![allow(dead_code)]

pub mod backend;
pub mod console;
pub mod daemon;
pub mod fake_cybersource_api;
pub mod fake_lyra_api;
pub mod fake_magento2;
pub mod fake_mpgs_api;
pub mod fake_opencart;
pub mod fake_openmage;
pub mod fake_webhook;
pub mod http;
pub mod order_states;
pub mod process;
pub mod webdriver;
