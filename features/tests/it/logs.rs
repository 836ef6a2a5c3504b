//! Property tests of the access-log parser: any bytes in, no panic out, and every line accounted
//! for as a row or a reject.

use omen_features::Masker;
use omen_features::ingest::logs::{LogFormat, LogParser, template_route};
use proptest::prelude::*;

const GOOD: &[&str] = &[
    "203.0.113.7 - - [20/Nov/2026:10:00:00 +0000] \"GET /users/123?token=x HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0 (X11) Firefox/120\"",
    "2001:db8::42 - alice [20/Nov/2026:11:00:01 +0100] \"POST /orders HTTP/2.0\" 201 - \"https://e.x/?a=1\" \"curl/8 \\\"x\\\"\" 1532",
    "198.51.100.1 - - [20/Nov/2026:23:59:59 -0500] \"-\" 400 0 \"-\" \"-\"",
    "10.0.0.1 - - [20/Nov/2026:10:00:00 +0000] \"GET /a/9 HTTP/1.0\" 304 - 0.123",
];

fn formats() -> Vec<LogFormat> {
    vec![
        LogFormat::Combined,
        LogFormat::Common,
        LogFormat::NginxJson,
        LogFormat::parse("$remote_addr [$time_local] \"$request\" $status $body_bytes_sent $request_time").unwrap(),
    ]
}

fn account(format: &LogFormat, bytes: &[u8]) {
    let mut p = LogParser::new(format, Masker::new([9; 32])).unwrap();
    let (df, rejects) = p.parse("prop.log", bytes, 1).unwrap();
    let lines = omen_features::ingest::lines(bytes).count();
    assert_eq!(df.height() + rejects.len(), lines, "every line is a row or a reject");
    for r in &rejects {
        assert!(r.source_line >= 1 && r.source_line as usize <= lines);
        assert!(!r.reason.is_empty());
    }
}

/// A good line with one byte replaced, inserted or removed.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    (0..GOOD.len(), any::<usize>(), any::<u8>(), 0..3u8).prop_map(|(i, pos, byte, op)| {
        let mut v = GOOD[i].as_bytes().to_vec();
        let p = pos % (v.len() + 1);
        match op {
            0 if p < v.len() => v[p] = byte,
            1 => v.insert(p, byte),
            _ if p < v.len() => {
                v.remove(p);
            }
            _ => {}
        }
        v
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for f in formats() {
            account(&f, &bytes);
        }
        let _ = LogFormat::detect(&bytes);
    }

    #[test]
    fn mutated_lines_never_panic(lines in proptest::collection::vec(mutated(), 1..8)) {
        let bytes = lines.join(&b'\n');
        for f in formats() {
            account(&f, &bytes);
        }
    }

    #[test]
    fn routes_never_panic_and_keep_slashes(path in "(/[a-zA-Z0-9@%._-]{0,40}){0,6}") {
        let r = template_route(&path);
        prop_assert_eq!(r.matches('/').count(), path.matches('/').count().max(1));
    }

    #[test]
    fn log_format_strings_never_panic(spec in "[$a-z_\\[\\]\" {}|-]{0,60}") {
        let _ = LogFormat::parse(&spec);
    }
}

#[test]
fn good_lines_parse_in_their_format() {
    let mut p = LogParser::new(&LogFormat::Combined, Masker::new([1; 32])).unwrap();
    let text = GOOD[..3].join("\n");
    let (df, rej) = p.parse("g.log", text.as_bytes(), 1).unwrap();
    assert!(rej.is_empty(), "{rej:?}");
    assert_eq!(df.height(), 3);
}
