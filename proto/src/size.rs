//! Byte sizes on command lines, and the room a packet needs around its
//! payload: shared by the gateway (`--max-payload`) and the simulator, so
//! both read a size the same way and size their MQTT packets alike.

/// Room in an MQTT packet for everything but the payload: topic,
/// correlation data, response topic, user properties. A request or reply
/// of `payload` bytes fits a packet limit of `payload + PACKET_HEADROOM`.
pub const PACKET_HEADROOM: usize = 64 * 1024;

/// Parses `131072`, `128KiB`, `1MiB` (also `KB`/`MB`/`K`/`M` as binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().map_err(|_| format!("{s:?} is not a size"))?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("{s:?}: unknown unit (use KiB or MiB)")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}
