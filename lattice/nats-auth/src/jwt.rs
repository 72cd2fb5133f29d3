//! NATS JWTs: JSON claims signed with an nkey (Ed25519), header `ed25519-nkey`.

use anyhow::{bail, Context as _, Result};
use data_encoding::{BASE32_NOPAD, BASE64URL_NOPAD};
use nkeys::KeyPair;
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

/// A JWT by `issuer` about `subject` (a public key), called `name`, carrying `nats` claims.
pub fn sign(issuer: &KeyPair, subject: &str, name: &str, nats: Value) -> Result<String> {
    let issued_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let mut claims = json!({
        "jti": "",
        "iat": issued_at,
        "iss": issuer.public_key(),
        "name": name,
        "sub": subject,
        "nats": nats,
    });
    // The token's id is the hash of its claims, as NATS's own tools make it.
    let digest = Sha256::digest(serde_json::to_vec(&claims)?);
    claims["jti"] = BASE32_NOPAD.encode(&digest).into();
    let unsigned = format!(
        "{}.{}",
        BASE64URL_NOPAD.encode(HEADER.as_bytes()),
        BASE64URL_NOPAD.encode(&serde_json::to_vec(&claims)?)
    );
    let signature = issuer.sign(unsigned.as_bytes())?;
    Ok(format!("{unsigned}.{}", BASE64URL_NOPAD.encode(&signature)))
}

/// The claims of `token`, once its signature is checked against the issuer it names.
pub fn verified_claims(token: &str) -> Result<Value> {
    let Some((signed, signature)) = token.rsplit_once('.') else {
        bail!("a JWT has three parts");
    };
    let Some((_header, encoded_claims)) = signed.split_once('.') else {
        bail!("a JWT has three parts");
    };
    let decode = |part: &str| {
        BASE64URL_NOPAD
            .decode(part.as_bytes())
            .context("not base64url")
    };
    let claims: Value =
        serde_json::from_slice(&decode(encoded_claims)?).context("claims are not JSON")?;
    let issuer = claims["iss"].as_str().context("no issuer")?;
    KeyPair::from_public_key(issuer)
        .context("the issuer is not a public key")?
        .verify(signed.as_bytes(), &decode(signature)?)
        .context("the signature is not the issuer's")?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_token_verifies_and_a_changed_one_does_not() {
        let account = KeyPair::new_account();
        let user = KeyPair::new_user();
        let token = sign(
            &account,
            &user.public_key(),
            "someone",
            json!({"type": "user"}),
        )
        .unwrap();
        let claims = verified_claims(&token).unwrap();
        assert_eq!(claims["name"], "someone");
        assert_eq!(claims["iss"], account.public_key());

        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        let forged = serde_json::to_vec(&json!({"iss": account.public_key(), "name": "admin"}));
        parts[1] = BASE64URL_NOPAD.encode(&forged.unwrap());
        assert!(verified_claims(&parts.join(".")).is_err());
    }
}
