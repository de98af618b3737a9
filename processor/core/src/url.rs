//! Credentials inside connection URLs: read them (a password in `MUTT_REDIS_URL` is a
//! rotatable secret like `MUTT_REDIS_PASSWORD`) and keep them out of messages and logs.

/// The `user:password` part of a URL's authority, as written.
fn userinfo(url: &str) -> Option<&str> {
    let rest = &url[url.find("://")? + 3..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    Some(&authority[..authority.rfind('@')?])
}

/// The password in a URL's user information, percent-decoded.
pub fn password(url: &str) -> Option<String> {
    let (_, password) = userinfo(url)?.split_once(':')?;
    let decoded = percent_decode(password);
    (!decoded.is_empty()).then_some(decoded)
}

/// The user name in a URL's user information, percent-decoded.
pub fn username(url: &str) -> Option<String> {
    let user = percent_decode(userinfo(url)?.split(':').next().unwrap_or(""));
    (!user.is_empty()).then_some(user)
}

/// A URL with any password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        // Only a password is hidden: `postgres://postgres@host` stays as it is.
        Some(at) if rest[..at].contains(':') => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}:***{}", &url[..scheme_end + 3], &rest[at..])
        }
        Some(_) => url.to_string(),
        None => url.to_string(),
    }
}

/// `%XX` sequences decoded (invalid ones kept as they are).
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && let (Some(h), Some(l)) = (
                b.get(i + 1).copied().and_then(hex),
                b.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_credentials_are_decoded() {
        assert_eq!(
            password("redis://mutt:p%40ss%3Aw@h:1/0").as_deref(),
            Some("p@ss:w")
        );
        assert_eq!(username("redis://mutt:pw@h:1").as_deref(), Some("mutt"));
        assert_eq!(password("redis://:pw@h").as_deref(), Some("pw"));
        assert_eq!(username("redis://:pw@h"), None);
        assert_eq!(password("redis://h:6379"), None);
        assert_eq!(password("postgres://u@h/db"), None);
        assert_eq!(password("postgres://u:%zz@h/db").as_deref(), Some("%zz"));
    }

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact("redis://:secret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(redact("postgres://u:p@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            redact("postgres://postgres@h/db"),
            "postgres://postgres@h/db"
        );
    }
}
