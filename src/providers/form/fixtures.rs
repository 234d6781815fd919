#[test]
fn every_fixture_decodes_as_serde_urlencoded_does() {
    for entry in
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/lyra-form")).unwrap()
    {
        let path = entry.unwrap().path();
        let body = std::fs::read(&path).unwrap();
        let reference: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap();
        let Ok(form) = super::parse(&body) else {
            continue;
        };
        let ours: Vec<(String, String)> = form.iter().map(|(a, b)| (a.into(), b.into())).collect();
        assert_eq!(ours, reference, "{}", path.display());
        for (n, v) in &reference {
            assert_eq!(form.get(n), Some(v.as_str()), "{} {n}", path.display());
        }
    }
}
