//! TFRecord framing.

/// TensorFlow's CRC mask: rotate right by 15 and add a constant, so CRCs of CRCs stay robust.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// One framed record.
pub fn frame(data: &[u8]) -> Vec<u8> {
    let len = (data.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(data.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc(data).to_le_bytes());
    out
}

/// Splits a file into record payloads, checking both CRCs of each. A truncated last record (a
/// writer killed mid-write) ends the list without an error, as TensorBoard's reader does.
pub fn unframe(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = vec![];
    let mut at = 0;
    while at + 12 <= bytes.len() {
        let len_bytes = &bytes[at..at + 8];
        let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes")) as usize;
        let len_crc = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().expect("4 bytes"));
        if masked_crc(len_bytes) != len_crc {
            return Err(format!("record at byte {at}: length CRC mismatch"));
        }
        let end = at + 12 + len + 4;
        if end > bytes.len() {
            break;
        }
        let data = &bytes[at + 12..at + 12 + len];
        let crc = u32::from_le_bytes(bytes[end - 4..end].try_into().expect("4 bytes"));
        if masked_crc(data) != crc {
            return Err(format!("record at byte {at}: data CRC mismatch"));
        }
        out.push(data);
        at = end;
    }
    Ok(out)
}
