#![allow(dead_code)]

pub mod daemon;
