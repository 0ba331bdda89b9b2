//! Forging tokens for the authorizer tests: the emulator signs every pool's tokens with one fixed
//! key that ships inside moto, so a test can sign a token exactly like a real one and change one
//! thing about it.

use std::io::Read;

use base64::Engine;
use num_bigint::BigUint;
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::workspace_root;

/// The emulator's private signing key (a JWK), read from the moto package in `.venv`.
pub fn emulator_private_jwk() -> Value {
    let lib = workspace_root().join(".venv/lib");
    let path = std::fs::read_dir(&lib)
        .expect(".venv/lib: run the tests with `make test`")
        .filter_map(|e| e.ok())
        .map(|e| e.path().join("site-packages/moto/cognitoidp/resources/jwks-private.json.gz"))
        .find(|p| p.exists())
        .expect("moto's jwks-private.json.gz in .venv");
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut text).unwrap();
    let key: Value = serde_json::from_str(&text).unwrap();
    // The file is one JWK; accept a JWK set too, should a later moto ship one.
    key.get("keys").map(|k| k[0].clone()).unwrap_or(key)
}

/// The claims of a JWT, unverified.
pub fn claims(token: &str) -> Value {
    let part = token.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// `claims` signed RS256 with the emulator's key, under key id `kid`.
///
/// The key ships as `n`, `e`, `d` only (no CRT primes), which signing libraries want, so this
/// computes the PKCS#1 v1.5 signature itself: `(0x00 01 FF.. 00 || DigestInfo(SHA-256)) ^ d mod n`.
pub fn sign(claims: &Value, kid: &str) -> String {
    let jwk = emulator_private_jwk();
    let int = |k: &str| {
        BigUint::from_bytes_be(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(jwk[k].as_str().unwrap()).unwrap(),
        )
    };
    let (n, d) = (int("n"), int("d"));
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": kid});
    let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
    const SHA256_DIGEST_INFO: [u8; 19] = [
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04,
        0x20,
    ];
    let k = n.to_bytes_be().len();
    let mut em = vec![0x00, 0x01];
    em.extend(std::iter::repeat_n(0xff, k - 3 - SHA256_DIGEST_INFO.len() - 32));
    em.push(0x00);
    em.extend(SHA256_DIGEST_INFO);
    em.extend(Sha256::digest(input.as_bytes()));
    let signature = BigUint::from_bytes_be(&em).modpow(&d, &n).to_bytes_be();
    let mut padded = vec![0u8; k - signature.len()];
    padded.extend(signature);
    format!("{input}.{}", b64(&padded))
}

pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
