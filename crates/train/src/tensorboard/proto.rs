//! The few protobuf fields of `Event` and `Summary` we write and read, hand-encoded.
//!
//! Field numbers (tensorboard/compat/proto): Event { wall_time = 1 (double), step = 2 (int64),
//! file_version = 3 (string), summary = 5 }; Summary { value = 1 (repeated) };
//! Summary.Value { tag = 1, simple_value = 2 (float), image = 4 }; Summary.Image { height = 1,
//! width = 2, colorspace = 3 (int32), encoded_image_string = 4 (bytes) }.

pub const WIRE_VARINT: u8 = 0;
pub const WIRE_64: u8 = 1;
pub const WIRE_LEN: u8 = 2;
pub const WIRE_32: u8 = 5;

pub fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn key(field: u32, wire: u8, out: &mut Vec<u8>) {
    varint((u64::from(field) << 3) | u64::from(wire), out);
}

pub fn bytes_field(field: u32, data: &[u8], out: &mut Vec<u8>) {
    key(field, WIRE_LEN, out);
    varint(data.len() as u64, out);
    out.extend_from_slice(data);
}

pub fn varint_field(field: u32, v: u64, out: &mut Vec<u8>) {
    key(field, WIRE_VARINT, out);
    varint(v, out);
}

/// Event header fields: wall time and step.
pub fn event_head(wall_time: f64, step: i64, out: &mut Vec<u8>) {
    key(1, WIRE_64, out);
    out.extend_from_slice(&wall_time.to_le_bytes());
    varint_field(2, step as u64, out);
}

/// A parsed field: number and value.
#[derive(Debug)]
pub enum Field<'a> {
    Varint(u32, u64),
    Fixed64(u32, [u8; 8]),
    Fixed32(u32, [u8; 4]),
    Bytes(u32, &'a [u8]),
}

fn read_varint(b: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at).ok_or("truncated varint")?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(v);
        }
    }
    Err("varint too long".into())
}

/// All top-level fields of a message.
pub fn fields(b: &[u8]) -> Result<Vec<Field<'_>>, String> {
    let mut out = vec![];
    let mut at = 0;
    while at < b.len() {
        let k = read_varint(b, &mut at)?;
        let (num, wire) = ((k >> 3) as u32, (k & 7) as u8);
        let take = |at: &mut usize, n: usize| -> Result<&[u8], String> {
            let s = b.get(*at..*at + n).ok_or("truncated field")?;
            *at += n;
            Ok(s)
        };
        out.push(match wire {
            WIRE_VARINT => Field::Varint(num, read_varint(b, &mut at)?),
            WIRE_64 => Field::Fixed64(num, take(&mut at, 8)?.try_into().expect("8")),
            WIRE_32 => Field::Fixed32(num, take(&mut at, 4)?.try_into().expect("4")),
            WIRE_LEN => {
                let n = read_varint(b, &mut at)? as usize;
                Field::Bytes(num, take(&mut at, n)?)
            }
            other => return Err(format!("unsupported wire type {other}")),
        });
    }
    Ok(out)
}
