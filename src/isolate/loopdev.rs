//! Loop devices attached with `LO_FLAGS_AUTOCLEAR`: the kernel detaches the device
//! by itself once the last user (our fd, the filesystem mounted on it) is gone, so
//! even a SIGKILLed run leaves no device attached.

use std::fs::{File, OpenOptions};
use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;

use super::IsolateError;
use crate::sys;

const LOOP_CTL_GET_FREE: std::ffi::c_ulong = 0x4C82;
const LOOP_CONFIGURE: std::ffi::c_ulong = 0x4C0A;
const BLKFLSBUF: std::ffi::c_ulong = 0x1261;
const LO_FLAGS_READ_ONLY: u32 = 1;
const LO_FLAGS_AUTOCLEAR: u32 = 4;
const LO_FLAGS_DIRECT_IO: u32 = 16;

#[repr(C)]
struct LoopInfo64 {
    lo_device: u64,
    lo_inode: u64,
    lo_rdevice: u64,
    lo_offset: u64,
    lo_sizelimit: u64,
    lo_number: u32,
    lo_encrypt_type: u32,
    lo_encrypt_key_size: u32,
    lo_flags: u32,
    lo_file_name: [u8; 64],
    lo_crypt_name: [u8; 64],
    lo_encrypt_key: [u8; 32],
    lo_init: [u64; 2],
}

#[repr(C)]
struct LoopConfig {
    fd: u32,
    block_size: u32,
    info: LoopInfo64,
    reserved: [u64; 8],
}

/// An attached loop device; dropping it closes our reference (autoclear does the rest).
#[derive(Debug)]
pub struct LoopDevice {
    path: PathBuf,
    device: File,
    direct_io: bool,
}

impl LoopDevice {
    /// Attaches `image` to a free loop device, with direct I/O when the host allows it
    /// so the image's blocks are not cached twice (once by the loop, once by ext4).
    pub fn attach(image: &Path) -> Result<LoopDevice, IsolateError> {
        Self::attach_with(image, false)
    }

    /// Attaches `image` read-only (a read-only filesystem image such as an EROFS
    /// layer on a backing that cannot serve a file-backed mount).
    pub fn attach_read_only(image: &Path) -> Result<LoopDevice, IsolateError> {
        Self::attach_with(image, true)
    }

    /// Attaches the open file `backing` (read-write) — the file itself, whatever
    /// its name `image` (for messages) points to by now: LOOP_CONFIGURE takes an fd.
    pub fn attach_file(backing: &File, image: &Path) -> Result<LoopDevice, IsolateError> {
        Self::attach_open(backing, image, false)
    }

    fn attach_with(image: &Path, read_only: bool) -> Result<LoopDevice, IsolateError> {
        let backing = OpenOptions::new()
            .read(true)
            .write(!read_only)
            .custom_flags(OFlag::O_CLOEXEC.bits())
            .open(image)
            .map_err(|source| IsolateError::Loop {
                image: image.to_path_buf(),
                what: "opening the image",
                source,
            })?;
        Self::attach_open(&backing, image, read_only)
    }

    fn attach_open(
        backing: &File,
        image: &Path,
        read_only: bool,
    ) -> Result<LoopDevice, IsolateError> {
        let loop_err = |what| {
            let image = image.to_path_buf();
            move |source| IsolateError::Loop {
                image,
                what,
                source,
            }
        };
        let control = File::open("/dev/loop-control").map_err(|e| {
            let who = if super::in_user_namespace() || !nix::unistd::geteuid().is_root() {
                " (loop devices need real root)"
            } else {
                ""
            };
            IsolateError::Unsupported(format!(
                "opening /dev/loop-control: {e}{who}; ext4/xfs backings cannot be made here: run as root, \
                 or use --backing tmpfs or --backing dir:PATH"
            ))
        })?;
        // Another process may take the free device between GET_FREE and CONFIGURE.
        for _ in 0..16 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number.
            let n = unsafe { sys::ioctl_none(control.as_fd(), LOOP_CTL_GET_FREE) }
                .map_err(loop_err("finding a free device"))?;
            let path = PathBuf::from(format!("/dev/loop{n}"));
            let device = match OpenOptions::new()
                .read(true)
                .write(true)
                .custom_flags(OFlag::O_CLOEXEC.bits())
                .open(&path)
            {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    // udev-less hosts: the node may not exist yet.
                    make_loop_node(&path, n as u32)
                        .map_err(loop_err("creating the device node"))?;
                    OpenOptions::new()
                        .read(true)
                        .write(true)
                        .open(&path)
                        .map_err(loop_err("opening the device"))?
                }
                Err(e) => return Err(loop_err("opening the device")(e)),
            };
            for direct_io in [true, false] {
                let flags = LO_FLAGS_AUTOCLEAR
                    | if direct_io { LO_FLAGS_DIRECT_IO } else { 0 }
                    | if read_only { LO_FLAGS_READ_ONLY } else { 0 };
                match configure(&device, backing, flags) {
                    Ok(()) => {
                        return Ok(LoopDevice {
                            path,
                            device,
                            direct_io,
                        })
                    }
                    Err(e) if e.raw_os_error() == Some(Errno::EBUSY as i32) => break,
                    Err(e) if direct_io && e.raw_os_error() == Some(Errno::EINVAL as i32) => {
                        continue
                    }
                    Err(e) => return Err(loop_err("configuring the device")(e)),
                }
            }
        }
        Err(loop_err("finding a free device")(std::io::Error::from(
            Errno::EBUSY,
        )))
    }

    /// The device node, e.g. `/dev/loop3`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the loop reads its image with direct I/O.
    pub fn direct_io(&self) -> bool {
        self.direct_io
    }

    /// Drops the device's own buffer cache (BLKFLSBUF) — after the filesystem on it
    /// is unmounted this leaves nothing of the scratch fs in memory.
    pub fn flush_buffers(&self) -> std::io::Result<()> {
        // SAFETY: BLKFLSBUF takes no argument.
        unsafe { sys::ioctl_none(self.device.as_fd(), BLKFLSBUF) }?;
        Ok(())
    }
}

fn configure(device: &File, backing: &File, flags: u32) -> std::io::Result<()> {
    // SAFETY: all-zero is a valid LoopConfig (plain integers and arrays).
    let mut config: LoopConfig = unsafe { std::mem::zeroed() };
    config.fd = backing.as_raw_fd() as u32;
    config.info.lo_flags = flags;
    // SAFETY: LOOP_CONFIGURE reads a struct loop_config, which LoopConfig mirrors.
    unsafe { sys::ioctl_ptr(device.as_fd(), LOOP_CONFIGURE, &mut config) }?;
    Ok(())
}

fn make_loop_node(path: &Path, n: u32) -> std::io::Result<()> {
    use nix::sys::stat::{makedev, mknod, Mode, SFlag};
    mknod(
        path,
        SFlag::S_IFBLK,
        Mode::from_bits_truncate(0o660),
        makedev(7, n.into()),
    )
    .map_err(std::io::Error::from)
}
