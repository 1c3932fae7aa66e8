use super::*;

fn content() -> Content {
    Content {
        server: "echo".into(),
        block: "# the echo fixture\n[servers.echo]\ncommand = \"mcp-echo\" # ours\nport = 8000\n"
            .into(),
        profile: Some(Section {
            name: "prod".into(),
            text: "[profiles.prod]\ninstances = 2\n".into(),
        }),
        defaults: None,
        recipients: vec!["age1abc".into()],
        runtime: None,
        mcpctl_version: "0.1.0".into(),
        backed_up_at: "2026-12-01T00:00:00Z".into(),
    }
}

#[test]
fn a_written_document_reads_back_the_same() {
    let doc = write(&content()).unwrap();
    assert_eq!(read(doc.as_bytes(), "echo").unwrap(), content());
}

#[test]
fn each_way_a_document_goes_wrong_has_its_own_refusal() {
    let doc = write(&content()).unwrap();
    let flipped = doc.replacen("mcp-echo", "mcp-echp", 1);
    assert_eq!(read(flipped.as_bytes(), "echo"), Err(Refused::Checksum));
    let truncated = &doc[..doc.len() / 2];
    assert!(matches!(
        read(truncated.as_bytes(), "echo"),
        Err(Refused::Truncated(_))
    ));
    let newer = doc.replacen("\"format_version\": 1", "\"format_version\": 2", 1);
    assert_eq!(read(newer.as_bytes(), "echo"), Err(Refused::Newer(2)));
    assert_eq!(
        read(doc.as_bytes(), "other"),
        Err(Refused::OtherServer {
            found: "echo".into(),
            wanted: "other".into()
        })
    );
    assert!(matches!(
        read(b"version = 1\n", "echo"),
        Err(Refused::NotJson(_))
    ));
    assert!(matches!(
        read(b"{\"a\": 1}", "echo"),
        Err(Refused::Foreign(_))
    ));
    let extra = doc.replacen("\"checksum\"", "\"extra\": 1, \"checksum\"", 1);
    assert!(matches!(
        read(extra.as_bytes(), "echo"),
        Err(Refused::Schema(_))
    ));
}

#[test]
fn a_block_with_more_than_its_server_is_refused_even_with_a_good_checksum() {
    let mut c = content();
    c.block
        .push_str("[servers.other]\ncommand = \"x\"\nport = 1\n");
    let doc = write(&c).unwrap();
    assert!(matches!(
        read(doc.as_bytes(), "echo"),
        Err(Refused::Schema(_))
    ));
}

#[test]
fn a_bundle_gives_the_named_servers_document() {
    let mut other = content();
    other.server = "two".into();
    other.block = "[servers.two]\ncommand = \"x\"\nport = 1\n".into();
    let bundle = write_bundle(&[write(&content()).unwrap(), write(&other).unwrap()]).unwrap();
    assert_eq!(read(bundle.as_bytes(), "two").unwrap(), other);
    assert_eq!(read(bundle.as_bytes(), "echo").unwrap(), content());
    assert!(matches!(
        read(bundle.as_bytes(), "three"),
        Err(Refused::NotInBundle { .. })
    ));
}
