//! Multiboot v1 kernels (Multiboot Specification 0.6.96, 3.1): the header's flags, and the
//! segment the a.out-kludge address fields describe.

use firmware::multiboot::{
    AoutAddresses, Header, MULTIBOOT_MEMORY_INFO, MULTIBOOT_PAGE_ALIGN, MULTIBOOT_REQUIRED_FLAGS,
    MULTIBOOT_VIDEO_MODE,
};

use super::{LoaderError, Segment};

/// The required header flags sipi honours: page-aligned modules (there are none) and memory
/// information (always given). The video mode request (flag 2) is accepted and not honoured,
/// as QEMU does: sipi has no display.
const SUPPORTED_REQUIRED_FLAGS: u32 =
    MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_VIDEO_MODE;

/// Refuses a header that requires a feature sipi lacks (flags 0-15 are requirements, 3.1.3).
pub(super) fn check_flags(header: &Header) -> Result<(), LoaderError> {
    let unsupported = header.flags & MULTIBOOT_REQUIRED_FLAGS & !SUPPORTED_REQUIRED_FLAGS;
    if unsupported != 0 {
        return Err(LoaderError::MultibootUnsupportedFlags(unsupported));
    }
    Ok(())
}

/// The one segment an a.out-kludge header describes (3.1.4): the file bytes from the header's
/// offset minus (header_addr - load_addr), loaded at load_addr up to load_end_addr (0: the end
/// of the file), then zeroed up to bss_end_addr (0: no bss); and the entry point, which must
/// lie inside it.
pub(super) fn aout_segment(
    image: &[u8],
    header: &Header,
    a: &AoutAddresses,
) -> Result<(Segment, u32), LoaderError> {
    let bad = LoaderError::MultibootAddresses;
    let (load, header_addr) = (u64::from(a.load_addr), u64::from(a.header_addr));
    let text_before_header = header_addr
        .checked_sub(load)
        .ok_or(bad("load_addr is above header_addr"))?;
    let offset = (header.offset as u64)
        .checked_sub(text_before_header)
        .ok_or(bad(
            "load_addr would start before the beginning of the file",
        ))?;
    let available = image.len() as u64 - offset;
    let filesz = match a.load_end_addr {
        0 => available,
        end => u64::from(end)
            .checked_sub(load)
            .ok_or(bad("load_end_addr is below load_addr"))?,
    };
    if filesz > available {
        return Err(bad("load_end_addr asks for more bytes than the file has"));
    }
    let memsz = match a.bss_end_addr {
        0 => filesz,
        end => u64::from(end)
            .checked_sub(load)
            .filter(|m| *m >= filesz)
            .ok_or(bad("bss_end_addr is below the end of the loaded data"))?,
    };
    if memsz == 0 {
        return Err(LoaderError::NoLoadableSegments);
    }
    let segment = Segment {
        index: 0,
        offset,
        filesz,
        start: load,
        end: load + memsz,
    };
    let entry = u64::from(a.entry_addr);
    if entry < segment.start || entry >= segment.end {
        return Err(LoaderError::EntryOutsideImage(entry));
    }
    Ok((segment, a.entry_addr))
}
