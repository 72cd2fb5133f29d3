//! NATS creds files: a user's JWT and the seed that proves it is theirs, in the layout every NATS
//! client reads (`nats --creds`, async-nats `with_credentials_file`, `wash --ctl-credsfile`).

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context as _, Result};
use nkeys::KeyPair;

const JWT_BEGIN: &str = "-----BEGIN NATS USER JWT-----";
const JWT_END: &str = "------END NATS USER JWT------";
const SEED_BEGIN: &str = "-----BEGIN USER NKEY SEED-----";
const SEED_END: &str = "------END USER NKEY SEED------";

#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub jwt: String,
    seed: String,
}

impl Credentials {
    pub fn new(jwt: String, seed: String) -> Self {
        Self { jwt, seed }
    }

    /// Reads a creds file.
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the creds file {}", path.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self> {
        let (Some(jwt), Some(seed)) = (
            between(text, JWT_BEGIN, JWT_END),
            between(text, SEED_BEGIN, SEED_END),
        ) else {
            bail!("not a NATS creds file (a user JWT and a user seed between their markers)");
        };
        if jwt.split('.').count() != 3 {
            bail!("the user JWT is not a JWT");
        }
        KeyPair::from_seed(seed).context("the user seed is not a seed")?;
        Ok(Self::new(jwt.to_string(), seed.to_string()))
    }

    /// The user's key pair, with which a client answers the server's challenge.
    pub fn key_pair(&self) -> Result<KeyPair> {
        KeyPair::from_seed(&self.seed).context("the user seed is not a seed")
    }

    pub fn to_creds_file(&self) -> String {
        format!(
            "{JWT_BEGIN}\n{jwt}\n{JWT_END}\n\n\
             ************************* IMPORTANT *************************\n\
             NKEY Seed printed below can be used to sign and prove identity.\n\
             NKEYs are sensitive and should be treated as secrets.\n\n\
             {SEED_BEGIN}\n{seed}\n{SEED_END}\n\n\
             *************************************************************\n",
            jwt = self.jwt,
            seed = self.seed,
        )
    }
}

/// Never prints the seed.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("jwt", &self.jwt)
            .finish_non_exhaustive()
    }
}

fn between<'t>(text: &'t str, begin: &str, end: &str) -> Option<&'t str> {
    let start = text.find(begin)? + begin.len();
    let length = text[start..].find(end)?;
    Some(text[start..start + length].trim()).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Credentials {
        let user = KeyPair::new_user();
        Credentials::new("aGVhZGVy.Y2xhaW1z.c2ln".into(), user.seed().unwrap())
    }

    #[test]
    fn a_creds_file_reads_back_as_written() {
        let creds = sample();
        assert_eq!(Credentials::parse(&creds.to_creds_file()).unwrap(), creds);
    }

    #[test]
    fn a_file_without_both_parts_is_not_a_creds_file() {
        let text = sample().to_creds_file();
        let without_seed = &text[..text.find(SEED_BEGIN).unwrap()];
        assert!(Credentials::parse(without_seed).is_err());
        assert!(Credentials::parse("").is_err());
        assert!(Credentials::parse(&text.replace("aGVhZGVy.Y2xhaW1z.c2ln", "nojwt")).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_seed() {
        let creds = sample();
        assert!(!format!("{creds:?}").contains(&creds.seed));
    }
}
