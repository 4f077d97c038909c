//! The object host calls (`OBJ_CREATE` .. `OBJ_DELETE`, `OBJ_RESERVE`, `OBJ_FLUSH_MANY`):
//! decode and check the guest's arguments, then ask [`crate::objects::Objects`].
//!
//! Names are read from guest memory the guest can read and must be UTF-8 of 1 to
//! `abi::fot::MAX_NAME_LEN` bytes (`-ENAMETOOLONG` beyond); IDs are read from and written to
//! 16-byte buffers the guest can read (or write).

use abi::fot::{perms, MAX_NAME_LEN};
use abi::hostcall::errno::{EFAULT, EINVAL, ENAMETOOLONG, ENOSYS};
use abi::hostcall::{nr, ID_LEN};
use abi::id::ObjId;
use abi::ring::FLUSH_MANY_MAX;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::access::GuestAccess;
use crate::objects::Objects;

/// Guest memory and the mapper.
pub struct ObjectCalls<'a> {
    /// Guest RAM.
    pub mem: &'a GuestMemoryMmap,
    /// What the guest may name.
    pub access: &'a GuestAccess,
    /// The mapper (`None`: the run has no store, every call is `-ENOSYS`).
    pub objects: Option<&'a Objects>,
}

/// Reads an array of `count` [`abi::ring::FlushRange`]s at `addr` (ring `FLUSH_MANY`, call
/// `OBJ_FLUSH_MANY`) as `(slot, offset, len)`.
pub fn read_flush_ranges(
    mem: &GuestMemoryMmap,
    access: &GuestAccess,
    addr: u64,
    count: u64,
) -> Result<Vec<(u64, u64, u64)>, i64> {
    if count > FLUSH_MANY_MAX {
        return Err(-EINVAL);
    }
    let size = count * std::mem::size_of::<abi::ring::FlushRange>() as u64;
    access.check(addr, size, false)?;
    let mut buf = vec![0u8; size as usize];
    mem.read_slice(&mut buf, GuestAddress(addr))
        .map_err(|_| -EFAULT)?;
    let le = |b: &[u8]| {
        let mut w = [0u8; 8];
        w.copy_from_slice(b);
        u64::from_le_bytes(w)
    };
    Ok(buf
        .chunks_exact(24)
        .map(|r| (le(&r[..8]), le(&r[8..16]), le(&r[16..24])))
        .collect())
}

impl ObjectCalls<'_> {
    /// Performs object call `nr`; returns `ret`.
    pub fn call(&self, nr: u64, a: &[u64; 6]) -> i64 {
        let Some(objects) = self.objects else {
            return -ENOSYS;
        };
        let result = match nr {
            nr::OBJ_CREATE => self.create(objects, a),
            nr::OBJ_LOOKUP => self
                .name(a[0], a[1])
                .and_then(|n| objects.lookup(&n))
                .and_then(|id| self.write_id(a[2], id)),
            nr::OBJ_BIND => {
                let name = self.name(a[0], a[1]);
                name.and_then(|n| objects.bind(&n, self.read_id(a[2])?))
                    .map(|()| 0)
            }
            nr::OBJ_MAP => self.map(objects, a),
            nr::OBJ_UNMAP => objects.unmap(a[0]).map(|()| 0),
            nr::OBJ_FLUSH => objects.sync(&[(a[0], a[1], a[2])]).map(|()| 0),
            nr::OBJ_FLUSH_MANY => read_flush_ranges(self.mem, self.access, a[0], a[1])
                .and_then(|r| objects.sync(&r))
                .map(|()| 0),
            nr::OBJ_RESERVE => objects.reserve(a[0], a[1], a[2]).map(|()| 0),
            nr::OBJ_UNBIND => self
                .name(a[0], a[1])
                .and_then(|n| objects.unbind(&n))
                .map(|()| 0),
            nr::OBJ_DELETE => self
                .read_id(a[0])
                .and_then(|id| objects.delete(id))
                .map(|()| 0),
            _ => Err(-ENOSYS),
        };
        result.unwrap_or_else(|e| e)
    }

    /// `ERR_REASON`: copies the most recent refusal's text (at most `a[1]` bytes) to `a[0]`;
    /// returns the text's full length, 0 when nothing was refused (or the run has no store).
    pub fn err_reason(&self, a: &[u64; 6]) -> i64 {
        let text = self
            .objects
            .and_then(Objects::last_refusal)
            .unwrap_or_default();
        let n = (text.len() as u64).min(a[1]);
        if n > 0 {
            if let Err(e) = self.access.check(a[0], n, true) {
                return e;
            }
            if self
                .mem
                .write_slice(&text.as_bytes()[..n as usize], GuestAddress(a[0]))
                .is_err()
            {
                return -EFAULT;
            }
        }
        text.len() as i64
    }

    fn create(&self, objects: &Objects, a: &[u64; 6]) -> Result<i64, i64> {
        let name = if a[1] == 0 {
            None
        } else {
            Some(self.name(a[0], a[1])?)
        };
        // Check the output buffer first so a bad one creates nothing.
        self.access.check(a[2], ID_LEN, true)?;
        let id = objects.create(name.as_deref())?;
        self.write_id(a[2], id)
    }

    fn map(&self, objects: &Objects, a: &[u64; 6]) -> Result<i64, i64> {
        let rights = a[1];
        let known = u64::from(perms::READ | perms::WRITE);
        if rights & !known != 0 || rights & u64::from(perms::READ) == 0 {
            return Err(-EINVAL);
        }
        let id = self.read_id(a[0])?;
        let write = rights & u64::from(perms::WRITE) != 0;
        let keep = match a[2] {
            0 => None,
            k => Some(u32::try_from(k - 1).map_err(|_| -EINVAL)?),
        };
        objects.map(id, write, keep).map(|r| r as i64)
    }

    fn name(&self, addr: u64, len: u64) -> Result<String, i64> {
        if len == 0 {
            return Err(-EINVAL);
        }
        if len > MAX_NAME_LEN as u64 {
            return Err(-ENAMETOOLONG);
        }
        self.access.check(addr, len, false)?;
        let mut buf = vec![0u8; len as usize];
        self.mem
            .read_slice(&mut buf, GuestAddress(addr))
            .map_err(|_| -EFAULT)?;
        String::from_utf8(buf).map_err(|_| -EINVAL)
    }

    fn read_id(&self, addr: u64) -> Result<ObjId, i64> {
        self.access.check(addr, ID_LEN, false)?;
        let mut id = [0u8; 16];
        self.mem
            .read_slice(&mut id, GuestAddress(addr))
            .map_err(|_| -EFAULT)?;
        Ok(ObjId(id))
    }

    fn write_id(&self, addr: u64, id: ObjId) -> Result<i64, i64> {
        self.access.check(addr, ID_LEN, true)?;
        self.mem
            .write_slice(&id.0, GuestAddress(addr))
            .map_err(|_| -EFAULT)?;
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot::RamPlan;
    use crate::memory::GuestRam;

    #[test]
    fn arguments_are_checked_before_the_store_is_asked() {
        let ram = GuestRam::new(16 << 20).unwrap();
        let access = GuestAccess::new(&RamPlan::new(16 << 20).unwrap());
        let mem = ram.mem();
        let calls = ObjectCalls {
            mem,
            access: &access,
            objects: None,
        };
        assert_eq!(calls.call(nr::OBJ_MAP, &[0; 6]), -ENOSYS, "no store");
        assert_eq!(calls.err_reason(&[0, 64, 0, 0, 0, 0]), 0, "nothing refused");
        mem.write_slice(b"ok\xff", GuestAddress(0x30_0000)).unwrap();
        assert_eq!(calls.name(0x30_0000, 2).unwrap(), "ok");
        assert_eq!(calls.name(0x30_0000, 3), Err(-EINVAL), "not UTF-8");
        assert_eq!(calls.name(0x30_0000, 0), Err(-EINVAL), "empty");
        assert_eq!(calls.name(0x30_0000, 97), Err(-ENAMETOOLONG));
        assert_eq!(calls.name(0x10_0000, 8), Err(-EFAULT), "system area");
        assert_eq!(calls.read_id(0).unwrap_err(), -EFAULT, "null page");
        assert_eq!(
            calls.write_id(0x1000, ObjId::NULL),
            Err(-EFAULT),
            "boot info is RO"
        );
    }
}
