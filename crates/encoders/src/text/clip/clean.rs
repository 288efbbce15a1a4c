//! Text cleaning before CLIP BPE, as open_clip's `SimpleTokenizer` does it with its default
//! `clean="lower"`: `ftfy.fix_text`, HTML unescaping twice, whitespace collapsing, lower case.
//!
//! Of `ftfy.fix_text` (ftfy 6.3) this implements the steps that change well-formed text: HTML
//! entity unescaping when the text has no `<`, Latin ligatures, half/fullwidth forms, curly
//! quotes, line breaks, terminal escapes, control characters and NFC. Not implemented: mojibake
//! repair (`fix_encoding`, `fix_c1_controls`: text that was decoded with the wrong codec) and
//! named HTML entities beyond the common ones in [`NAMED_ENTITIES`] (numeric ones all work).

use unicode_normalization::UnicodeNormalization;

/// The named HTML entities recognised (with their `;`).
pub const NAMED_ENTITIES: &[(&str, &str)] = &[
    ("amp", "&"),
    ("lt", "<"),
    ("gt", ">"),
    ("quot", "\""),
    ("apos", "'"),
    ("nbsp", "\u{a0}"),
    ("copy", "©"),
    ("reg", "®"),
    ("trade", "™"),
    ("hellip", "…"),
    ("mdash", "—"),
    ("ndash", "–"),
    ("lsquo", "‘"),
    ("rsquo", "’"),
    ("ldquo", "“"),
    ("rdquo", "”"),
    ("deg", "°"),
    ("times", "×"),
    ("eacute", "é"),
    ("egrave", "è"),
    ("agrave", "à"),
    ("ccedil", "ç"),
    ("uuml", "ü"),
    ("ouml", "ö"),
    ("auml", "ä"),
    ("szlig", "ß"),
];

/// Replaces `&name;`, `&#N;` and `&#xH;` entities once.
pub fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        match decode_entity(tail) {
            Some((s, used)) => {
                out.push_str(&s);
                rest = &tail[used..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The decoded text of the entity at the start of `s` and its length in bytes.
fn decode_entity(s: &str) -> Option<(String, usize)> {
    let end = s.find(';')?;
    let body = &s[1..end];
    if body.is_empty() || body.len() > 32 {
        return None;
    }
    let decoded = if let Some(num) = body.strip_prefix('#') {
        let code = if let Some(hex) = num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
            u32::from_str_radix(hex, 16).ok()?
        } else {
            num.parse::<u32>().ok()?
        };
        // As Python's html.unescape: invalid code points become U+FFFD.
        char::from_u32(code)
            .filter(|&c| c != '\0')
            .unwrap_or('\u{fffd}')
            .to_string()
    } else {
        NAMED_ENTITIES
            .iter()
            .find(|(n, _)| *n == body)
            .map(|(_, v)| v.to_string())?
    };
    Some((decoded, end + 1))
}

fn ligature(c: char) -> Option<&'static str> {
    Some(match c {
        'Ĳ' => "IJ",
        'ĳ' => "ij",
        'ŉ' => "ʼn",
        'Ǳ' => "DZ",
        'ǲ' => "Dz",
        'ǳ' => "dz",
        'Ǆ' => "DŽ",
        'ǅ' => "Dž",
        'ǆ' => "dž",
        'Ǉ' => "LJ",
        'ǈ' => "Lj",
        'ǉ' => "lj",
        'Ǌ' => "NJ",
        'ǋ' => "Nj",
        'ǌ' => "nj",
        'ﬀ' => "ff",
        'ﬁ' => "fi",
        'ﬂ' => "fl",
        'ﬃ' => "ffi",
        'ﬄ' => "ffl",
        'ﬅ' => "ſt",
        'ﬆ' => "st",
        _ => return None,
    })
}

fn is_removed_control(c: char) -> bool {
    matches!(c as u32,
        0x00..=0x08 | 0x0B | 0x0E..=0x1F | 0x7F | 0x206A..=0x206F | 0xFEFF | 0xFFF9..=0xFFFC)
}

/// Removes ANSI terminal escapes `ESC [ (digits|;)* letter`.
fn remove_terminal_escapes(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if chars[i] == '\u{1b}' && chars.get(i + 1) == Some(&'[') {
            let mut j = i + 2;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == ';') {
                j += 1;
            }
            if j < chars.len() && chars[j].is_ascii_alphabetic() {
                i = j + 1;
                continue;
            }
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

/// One pass of the character-level fixes, in ftfy's order.
fn fix_chars(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some(l) = ligature(c) {
            out.push_str(l);
            continue;
        }
        let c = match c as u32 {
            0x3000 => ' ',
            0xFF01..=0xFFEF => {
                let alt: String = c.nfkc().collect();
                out.push_str(&alt);
                continue;
            }
            _ => c,
        };
        let c = match c {
            '\u{2bc}' | '\u{2018}'..='\u{201b}' => '\'',
            '\u{201c}'..='\u{201f}' => '"',
            _ => c,
        };
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            '\u{2028}' | '\u{2029}' | '\u{85}' => out.push('\n'),
            _ => out.push(c),
        }
    }
    let out = remove_terminal_escapes(&out);
    out.chars().filter(|&c| !is_removed_control(c)).collect()
}

/// The subset of `ftfy.fix_text` described in the module docs, repeated until stable as ftfy
/// does.
pub fn fix_text(text: &str) -> String {
    let unescape = !text.contains('<');
    let mut text = text.to_owned();
    loop {
        let orig = text.clone();
        if unescape {
            text = unescape_html(&text);
        }
        text = fix_chars(&text).nfc().collect();
        if text == orig {
            return text;
        }
    }
}

/// Python's `str.isspace` (what `str.split()` splits on).
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || matches!(c as u32, 0x1C..=0x1F)
}

/// open_clip's `clean="lower"`: fix, unescape twice, strip, collapse whitespace, lower case.
pub fn clean_lower(text: &str) -> String {
    let t = fix_text(text);
    let t = unescape_html(&unescape_html(&t));
    let words: Vec<&str> = t.split(is_python_space).filter(|w| !w.is_empty()).collect();
    words.join(" ").to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixes_what_ftfy_fixes() {
        assert_eq!(clean_lower("  “Hi”  ‘there’\tﬁne  "), "\"hi\" 'there' fine");
        assert_eq!(clean_lower("ＦＵＬＬ　１２３"), "full 123");
        assert_eq!(clean_lower("a &amp;amp; b &#x41;&#66;"), "a & b ab");
        // With a `<` ftfy leaves entities alone; open_clip's two passes still decode two levels.
        assert_eq!(clean_lower("<b> &amp;amp;amp; </b>"), "<b> &amp; </b>");
        assert_eq!(clean_lower("e\u{301}\u{1b}[31mred\u{1b}[0m"), "\u{e9}red");
        assert_eq!(clean_lower("ΣΊΣΥΦΟΣ"), "σίσυφος");
        assert_eq!(clean_lower(""), "");
    }
}
