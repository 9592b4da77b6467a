//! YouTube video ids from the URL shapes people paste, without any network.

/// The 11-character video id of a YouTube URL, or `None` for anything else.
///
/// Accepted: `youtube.com/watch?v=ID` (any parameter order, `m.`, `www.`,
/// `music.`), `youtu.be/ID`, `youtube.com/embed/ID`, `/shorts/ID`, `/live/ID`,
/// `/v/ID`, and `youtube-nocookie.com/embed/ID`; with or without the scheme,
/// with extra parameters or a fragment.
pub fn video_id(url: &str) -> Option<String> {
    let url = url.trim();
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or(url);
    let (host, path_and_query) = rest.split_once('/').unwrap_or((rest, ""));
    let host = host.to_ascii_lowercase();
    let host = host.strip_prefix("www.").or_else(|| host.strip_prefix("m.")).unwrap_or(&host);
    let host = host.strip_prefix("music.").unwrap_or(host);
    let (path, query) = path_and_query.split_once('?').unwrap_or((path_and_query, ""));
    let path = path.split('#').next().unwrap_or_default();
    let query = query.split('#').next().unwrap_or_default();
    let candidate = match host {
        "youtu.be" => path.split('/').next(),
        "youtube.com" | "youtube-nocookie.com" => {
            let mut segments = path.split('/');
            match segments.next() {
                Some("watch") => query.split('&').find_map(|kv| kv.strip_prefix("v=")),
                Some("embed" | "shorts" | "live" | "v") => segments.next(),
                _ => None,
            }
        }
        _ => None,
    }?;
    is_id(candidate).then(|| candidate.to_owned())
}

fn is_id(s: &str) -> bool {
    s.len() == 11 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The thumbnail YouTube serves for every video id.
pub fn thumbnail_url(id: &str) -> String {
    format!("https://i.ytimg.com/vi/{id}/hqdefault.jpg")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_shape_gives_the_id() {
        let id = "dQw4w9WgXcQ";
        for url in [
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
            "http://youtube.com/watch?v=dQw4w9WgXcQ&t=42s",
            "https://m.youtube.com/watch?feature=share&v=dQw4w9WgXcQ",
            "https://music.youtube.com/watch?v=dQw4w9WgXcQ&list=RD",
            "youtube.com/watch?v=dQw4w9WgXcQ#t=1",
            "https://youtu.be/dQw4w9WgXcQ",
            "https://youtu.be/dQw4w9WgXcQ?si=abc&t=3",
            "https://www.youtube.com/embed/dQw4w9WgXcQ?autoplay=1",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
            "https://youtube.com/shorts/dQw4w9WgXcQ",
            "https://www.youtube.com/live/dQw4w9WgXcQ?feature=shared",
            "https://www.youtube.com/v/dQw4w9WgXcQ",
            "  https://WWW.YouTube.com/watch?v=dQw4w9WgXcQ  ",
        ] {
            assert_eq!(video_id(url).as_deref(), Some(id), "{url}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for url in [
            "",
            "https://vimeo.com/123456789",
            "https://www.youtube.com/watch?v=short",
            "https://www.youtube.com/watch?v=dQw4w9WgXcQQ",
            "https://www.youtube.com/watch?list=abc",
            "https://www.youtube.com/channel/UC1234567890",
            "https://youtu.be/",
            "https://evil.example/youtube.com/watch?v=dQw4w9WgXcQ",
            "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
            "https://www.youtube.com/watch?v=dQw4w9WgX%3F",
        ] {
            assert_eq!(video_id(url), None, "{url}");
        }
    }
}
