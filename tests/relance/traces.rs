//! OpenTelemetry traces over OTLP/HTTP: off by default, on with the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`; an HTTP request to `relance serve` is exported as a
//! span (protobuf) to a collector on loopback, sent at the latest when the service stops.

use std::io::{BufRead, BufReader, Read, Write};
use std::sync::{Arc, Mutex};

use crate::helpers::workspace_with_rules_and;

/// One request an OTLP collector received: path, content type, body.
type Received = (String, String, Vec<u8>);

/// A minimal OTLP/HTTP collector: answers 200 to every request and keeps them.
fn collector() -> (u16, Arc<Mutex<Vec<Received>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let got = Arc::new(Mutex::new(Vec::new()));
    let sink = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut writer = stream.try_clone().unwrap();
                let mut reader = BufReader::new(stream);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
                    let (mut length, mut ctype) = (0usize, String::new());
                    loop {
                        let mut h = String::new();
                        if reader.read_line(&mut h).unwrap_or(0) == 0 {
                            return;
                        }
                        let h = h.trim_end();
                        if h.is_empty() {
                            break;
                        }
                        if let Some((k, v)) = h.split_once(':') {
                            match k.trim().to_ascii_lowercase().as_str() {
                                "content-length" => length = v.trim().parse().unwrap_or(0),
                                "content-type" => ctype = v.trim().to_string(),
                                _ => {}
                            }
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    sink.lock().unwrap().push((path, ctype, body));
                    let _ = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (port, got)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn requests_are_exported_as_otlp_traces_when_an_endpoint_is_set() {
    let w = workspace_with_rules_and(&[], "");
    let (port, got) = collector();
    let endpoint = format!("http://127.0.0.1:{port}");
    let served = w.serve(&[("OTEL_EXPORTER_OTLP_ENDPOINT", &endpoint)]);
    let answer = reqwest::blocking::get(format!("{}/healthz", served.base)).unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    let log = served.stop();
    let received = got.lock().unwrap().clone();
    let traces: Vec<&Received> = received.iter().filter(|r| r.0 == "/v1/traces").collect();
    assert!(!traces.is_empty(), "no trace exported: {received:?}\n{log}");
    assert!(
        traces.iter().all(|t| t.1 == "application/x-protobuf"),
        "{traces:?}"
    );
    let all: Vec<u8> = traces.iter().flat_map(|t| t.2.clone()).collect();
    for needle in ["relance", "http request", "/healthz"] {
        assert!(
            contains(&all, needle.as_bytes()),
            "'{needle}' not in the traces"
        );
    }
    assert!(!log.contains("panicked"), "{log}");

    // Without the variable nothing is sent anywhere.
    let (port, got) = collector();
    let served = w.serve(&[]);
    let _ = reqwest::blocking::get(format!("{}/healthz", served.base)).unwrap();
    served.stop();
    let _ = port;
    assert!(got.lock().unwrap().is_empty());
}
