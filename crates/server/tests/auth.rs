//! JWT bearer tokens (HS256 and RS256/ES256 from a JWKS file) and read-only grants, over raw
//! HTTP. Auth does not depend on the storage: SQLite storage only.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::{Backend, Harness};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tether_server::auth::{Access, JwtConfig};
use tether_server::Config;

const SECRET: &[u8] = b"the identity provider's shared secret";
const ISSUER: &str = "https://id.example.com";
const AUDIENCE: &str = "tether";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hs256(config: &mut Config) {
    config.jwt = Some(JwtConfig {
        issuer: Some(ISSUER.into()),
        audience: Some(AUDIENCE.into()),
        scopes_claim: "organization_id".into(),
        ..JwtConfig::hs256(SECRET)
    });
    config.tokens = config.tokens.clone().grant("static-reader", &["s1"], false);
    config.tokens.0.get_mut("static-reader").unwrap().read_only = true;
}

fn jwks(config: &mut Config) {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/jwks.json");
    config.jwt = Some(JwtConfig {
        default_access: Access::Write,
        ..JwtConfig::jwks_file(path.as_ref()).unwrap()
    });
}

/// Claims of a valid token for `s1`, which `edit` may change.
fn claims(edit: impl FnOnce(&mut Value)) -> Value {
    let mut c = json!({
        "sub": "user-1",
        "organization_id": "s1",
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": now() + 600,
        "nbf": now() - 5,
    });
    edit(&mut c);
    c
}

fn signed(claims: &Value, secret: &[u8]) -> String {
    encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

fn pull(h: &Harness, token: &str, scope: &str) -> (u16, Value) {
    h.raw(
        "GET",
        &format!("/v1/scopes/{scope}/changes"),
        Some(token),
        None,
    )
}

fn push(h: &Harness, token: &str) -> (u16, Value) {
    let body = json!({"mutations": [
        {"collection": "objects", "id": "x", "op": "put", "data": {"n": 1}, "base_version": null}
    ]})
    .to_string();
    h.raw("POST", "/v1/scopes/s1/mutations", Some(token), Some(&body))
}

/// Base64url without padding, enough to forge a token by hand.
mod base64_like {
    pub(crate) fn encode(bytes: &[u8]) -> String {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n =
                chunk.iter().fold(0u32, |n, b| n << 8 | u32::from(*b)) << (8 * (3 - chunk.len()));
            for i in 0..=chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            }
        }
        out
    }
}

fn refused(answer: (u16, Value), why: &str) {
    let (status, body) = answer;
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let message = body["message"].as_str().unwrap();
    assert!(message.contains(why), "{why:?} not in {message:?}");
}

#[test]
fn hs256_tokens_grant_their_scopes_read_only_unless_they_say_write() {
    let h = Harness::start_with(Backend::Sqlite, hs256);
    let reader = signed(&claims(|_| {}), SECRET);
    assert_eq!(pull(&h, &reader, "s1").0, 200);
    let (status, body) = push(&h, &reader);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap().contains("read-only"),
        "{body}"
    );
    assert_eq!(pull(&h, &reader, "s2").0, 403, "a scope it does not name");
    let writer = signed(&claims(|c| c["access"] = json!("write")), SECRET);
    let (status, body) = push(&h, &writer);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["status"], "accepted");
    // A list of scopes.
    let both = signed(
        &claims(|c| c["organization_id"] = json!(["s2", "s1"])),
        SECRET,
    );
    assert_eq!(pull(&h, &both, "s1").0, 200);
    assert_eq!(pull(&h, &both, "s2").0, 200);
    // A JWT never reaches the admin API, nor every scope.
    let (status, _) = h.raw("GET", "/v1/admin/scopes/s1/quarantine", Some(&writer), None);
    assert_eq!(status, 403);
    let star = signed(&claims(|c| c["organization_id"] = json!("*")), SECRET);
    assert_eq!(pull(&h, &star, "s1").0, 403);
    // Static tokens keep working and can be read-only too.
    assert_eq!(pull(&h, "static-reader", "s1").0, 200);
    assert_eq!(push(&h, "static-reader").0, 403);
}

#[test]
fn refused_tokens_say_why() {
    let h = Harness::start_with(Backend::Sqlite, hs256);
    let t = now();
    refused(
        pull(
            &h,
            &signed(&claims(|c| c["exp"] = json!(t - 120)), SECRET),
            "s1",
        ),
        "expired",
    );
    refused(
        pull(
            &h,
            &signed(&claims(|c| c["nbf"] = json!(t + 120)), SECRET),
            "s1",
        ),
        "not valid yet",
    );
    refused(
        pull(&h, &signed(&claims(|_| {}), b"another secret"), "s1"),
        "signature",
    );
    refused(
        pull(
            &h,
            &signed(&claims(|c| c["iss"] = json!("https://evil")), SECRET),
            "s1",
        ),
        "issuer",
    );
    refused(
        pull(
            &h,
            &signed(&claims(|c| c["aud"] = json!("other")), SECRET),
            "s1",
        ),
        "audience",
    );
    refused(
        pull(
            &h,
            &signed(
                &claims(|c| {
                    c.as_object_mut().unwrap().remove("organization_id");
                }),
                SECRET,
            ),
            "s1",
        ),
        "organization_id",
    );
    refused(
        pull(
            &h,
            &signed(&claims(|c| c["access"] = json!("root")), SECRET),
            "s1",
        ),
        "access",
    );
    refused(
        pull(
            &h,
            &signed(
                &claims(|c| {
                    c.as_object_mut().unwrap().remove("exp");
                }),
                SECRET,
            ),
            "s1",
        ),
        "exp",
    );
    refused(pull(&h, "not.a.jwt", "s1"), "not a valid JWT");
    // alg "none": no signature at all.
    let b64 = |v: &Value| {
        use base64_like::encode;
        encode(v.to_string().as_bytes())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(&claims(|_| {}))
    );
    refused(pull(&h, &unsigned, "s1"), "not a valid JWT");
    refused(pull(&h, "unknown-static-token", "s1"), "not valid");
    // Within the 30 s leeway: still accepted.
    assert_eq!(
        pull(
            &h,
            &signed(&claims(|c| c["exp"] = json!(t - 10)), SECRET),
            "s1"
        )
        .0,
        200
    );
}

#[test]
fn rs256_and_es256_tokens_are_checked_against_the_jwks() {
    let h = Harness::start_with(Backend::Sqlite, jwks);
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(format!("{keys}/rsa.pem")).unwrap()).unwrap();
    let ec = EncodingKey::from_ec_pem(&std::fs::read(format!("{keys}/ec.pem")).unwrap()).unwrap();
    let claims = json!({"scopes": ["s1"], "exp": now() + 600});
    let token = |alg, kid: Option<&str>, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.kid = kid.map(String::from);
        encode(&header, &claims, key).unwrap()
    };
    for t in [
        token(Algorithm::RS256, Some("rsa-1"), &rsa),
        token(Algorithm::ES256, Some("ec-1"), &ec),
    ] {
        assert_eq!(pull(&h, &t, "s1").0, 200);
        assert_eq!(push(&h, &t).0, 200, "default access: write");
    }
    refused(
        pull(&h, &token(Algorithm::RS256, Some("rsa-9"), &rsa), "s1"),
        "key is unknown",
    );
    refused(
        pull(&h, &token(Algorithm::RS256, None, &rsa), "s1"),
        "key is unknown",
    );
    // An ES256 signature naming the RSA key: refused.
    refused(
        pull(&h, &token(Algorithm::ES256, Some("rsa-1"), &ec), "s1"),
        "",
    );
    // HS256 against a JWKS (the public key used as a shared secret): refused.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = Some("rsa-1".into());
    let hs = encode(&header, &claims, &EncodingKey::from_secret(b"x").unwrap()).unwrap();
    refused(pull(&h, &hs, "s1"), "algorithm");
}

#[test]
fn bad_jwks_files_are_configuration_errors() {
    for bad in [
        r#"{"keys": []}"#,
        "not json",
        r#"{"keys": [{"kty": "oct", "k": "eA"}]}"#,
    ] {
        let err = JwtConfig::jwks(bad).unwrap_err();
        assert!(err.to_string().contains("JWKS"), "{bad}: {err}");
    }
}

/// Issue 18, item 2: with no audience configured, a token that names an audience (an identity
/// provider's token for another API, scopes claim and all) is refused, HS256 and RS256 alike.
#[test]
fn tokens_naming_an_audience_are_refused_when_none_is_configured() {
    let h = Harness::start_with(Backend::Sqlite, |config| {
        config.jwt = Some(JwtConfig {
            scopes_claim: "organization_id".into(),
            ..JwtConfig::hs256(SECRET)
        });
    });
    let plain = claims(|c| {
        c.as_object_mut().unwrap().remove("aud");
    });
    assert_eq!(pull(&h, &signed(&plain, SECRET), "s1").0, 200);
    for aud in [json!("other-service"), json!(["other-service"]), json!([])] {
        let token = signed(&claims(|c| c["aud"] = aud.clone()), SECRET);
        refused(pull(&h, &token, "s1"), "audience");
    }
    drop(h);
    let h = Harness::start_with(Backend::Sqlite, jwks);
    let keys = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
    let rsa =
        EncodingKey::from_rsa_pem(&std::fs::read(format!("{keys}/rsa.pem")).unwrap()).unwrap();
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa-1".into());
    let sign = |claims: &Value| encode(&header, claims, &rsa).unwrap();
    let ours = json!({"scopes": ["s1"], "exp": now() + 600});
    assert_eq!(pull(&h, &sign(&ours), "s1").0, 200);
    let theirs = json!({"scopes": ["s1"], "exp": now() + 600, "aud": "other-service"});
    refused(pull(&h, &sign(&theirs), "s1"), "audience");
}
