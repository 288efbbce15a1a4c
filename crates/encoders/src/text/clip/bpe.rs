//! CLIP's byte-level BPE (OpenAI CLIP / open_clip `SimpleTokenizer`) over the merges file
//! `bpe_simple_vocab_16e6.txt.gz`: 256 byte symbols, the same with the end-of-word mark `</w>`,
//! 48,894 merges, then `<start_of_text>` (49406) and `<end_of_text>` (49407).

use super::clean::clean_lower;
use crate::error::{EncoderError, Result};
use flate2::read::GzDecoder;
use regex::Regex;
use std::collections::HashMap;
use std::io::Read;
use std::path::Path;

/// Merges used from the file (CLIP's vocabulary is 49,408 tokens).
const MERGES: usize = 49152 - 256 - 2;
pub const START_OF_TEXT: &str = "<start_of_text>";
pub const END_OF_TEXT: &str = "<end_of_text>";

/// GPT-2's reversible map from bytes to printable characters, indexed by byte, and the byte
/// order of the vocabulary (printable bytes first, then the others, each ascending).
fn bytes_to_unicode() -> ([char; 256], Vec<u8>) {
    let mut table = ['\0'; 256];
    let printable = |b: u32| {
        (u32::from(b'!')..=u32::from(b'~')).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut n = 0;
    for b in 0..256u32 {
        table[b as usize] = if printable(b) {
            char::from_u32(b).unwrap_or('\0')
        } else {
            n += 1;
            char::from_u32(255 + n).unwrap_or('\0')
        };
    }
    let order = (0..=255u8)
        .filter(|&b| printable(u32::from(b)))
        .chain((0..=255u8).filter(|&b| !printable(u32::from(b))))
        .collect();
    (table, order)
}

/// The BPE model: vocabulary, merge ranks and the pre-tokenising pattern.
#[derive(Debug)]
pub struct ClipBpe {
    encoder: HashMap<String, i64>,
    ranks: HashMap<(String, String), usize>,
    byte_chars: [char; 256],
    pattern: Regex,
    sot: i64,
    eot: i64,
}

impl ClipBpe {
    /// Reads the gzip-compressed merges file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| EncoderError::io(path, e))?;
        let mut text = String::new();
        GzDecoder::new(bytes.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| EncoderError::Tokenizer {
                path: path.to_owned(),
                message: format!("not a gzip-compressed UTF-8 merges file: {e}"),
            })?;
        Self::from_merges_text(&text).map_err(|message| EncoderError::Tokenizer {
            path: path.to_owned(),
            message,
        })
    }

    /// Builds the model from the merges file's text (first line: a version header).
    pub fn from_merges_text(text: &str) -> std::result::Result<Self, String> {
        let lines: Vec<&str> = text.split('\n').collect();
        if lines.len() < MERGES + 1 {
            return Err(format!(
                "{} lines, expected at least {} (a header and {MERGES} merges)",
                lines.len(),
                MERGES + 1
            ));
        }
        let (byte_chars, order) = bytes_to_unicode();
        let mut vocab: Vec<String> = order
            .iter()
            .map(|&b| byte_chars[b as usize].to_string())
            .collect();
        vocab.extend(
            order
                .iter()
                .map(|&b| format!("{}</w>", byte_chars[b as usize])),
        );
        let mut ranks = HashMap::with_capacity(MERGES);
        for (i, line) in lines[1..=MERGES].iter().enumerate() {
            let mut parts = line.split_whitespace();
            let (Some(a), Some(b), None) = (parts.next(), parts.next(), parts.next()) else {
                return Err(format!("merge line {} is not two symbols: {line:?}", i + 2));
            };
            vocab.push(format!("{a}{b}"));
            ranks.insert((a.to_owned(), b.to_owned()), i);
        }
        vocab.push(START_OF_TEXT.into());
        vocab.push(END_OF_TEXT.into());
        let encoder: HashMap<String, i64> = vocab
            .into_iter()
            .enumerate()
            .map(|(i, t)| (t, i as i64))
            .collect();
        let pattern = Regex::new(&format!(
            r"(?i){START_OF_TEXT}|{END_OF_TEXT}|'s|'t|'re|'ve|'m|'ll|'d|[\p{{L}}]+|[\p{{N}}]|[^\s\p{{L}}\p{{N}}]+"
        ))
        .map_err(|e| e.to_string())?;
        Ok(ClipBpe {
            sot: encoder[START_OF_TEXT],
            eot: encoder[END_OF_TEXT],
            encoder,
            ranks,
            byte_chars,
            pattern,
        })
    }

    pub fn start_id(&self) -> i64 {
        self.sot
    }

    pub fn end_id(&self) -> i64 {
        self.eot
    }

    pub fn vocab_size(&self) -> usize {
        self.encoder.len()
    }

    /// The symbols of one pre-token after merging.
    fn bpe(&self, token: &str) -> Vec<String> {
        if token == START_OF_TEXT || token == END_OF_TEXT {
            return vec![token.to_owned()];
        }
        let chars: Vec<char> = token.chars().collect();
        let mut word: Vec<String> = chars.iter().map(|c| c.to_string()).collect();
        if let Some(last) = word.last_mut() {
            last.push_str("</w>");
        }
        while word.len() > 1 {
            let best = word
                .windows(2)
                .filter_map(|p| self.ranks.get(&(p[0].clone(), p[1].clone())))
                .min()
                .copied();
            let Some(rank) = best else { break };
            let (first, second) = word
                .windows(2)
                .find(|p| self.ranks.get(&(p[0].clone(), p[1].clone())) == Some(&rank))
                .map(|p| (p[0].clone(), p[1].clone()))
                .unwrap_or_default();
            let mut merged = Vec::with_capacity(word.len());
            let mut i = 0;
            while i < word.len() {
                if i + 1 < word.len() && word[i] == first && word[i + 1] == second {
                    merged.push(format!("{first}{second}"));
                    i += 2;
                } else {
                    merged.push(word[i].clone());
                    i += 1;
                }
            }
            word = merged;
        }
        word
    }

    /// Ids of `text` after open_clip's cleaning, without start/end tokens.
    pub fn encode(&self, text: &str) -> Vec<i64> {
        let text = clean_lower(text);
        let mut ids = Vec::new();
        for m in self.pattern.find_iter(&text) {
            let mapped: String = m
                .as_str()
                .bytes()
                .map(|b| self.byte_chars[b as usize])
                .collect();
            for sym in self.bpe(&mapped) {
                // Every symbol is in the vocabulary by construction (bytes and merges are).
                if let Some(&id) = self.encoder.get(&sym) {
                    ids.push(id);
                }
            }
        }
        ids
    }
}
