//! What makes the dashboard's assets cheap to fetch: each file the page links
//! (`pkg/marain.js`, `pkg/marain.wasm`, `pkg/marain.css`) is renamed after its
//! content (`marain.<hash>.wasm`), so the server can let browsers keep it for a
//! year (a new build has new names); `hash.txt` at the site root says the
//! names, in the format Leptos's `HydrationScripts` reads; and every file of the
//! site gets `.br` and `.gz` copies next to it, which the server sends by the
//! request's `Accept-Encoding` without compressing anything itself.

use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// The files `hash.txt` names, by its keys.
const HASHED: [(&str, &str); 3] = [("js", "js"), ("wasm", "wasm"), ("css", "css")];

/// How much of the SHA-256 a name carries: 64 bits, hex.
const HASH_CHARS: usize = 16;

/// Files smaller than this are sent as they are: compressing them saves
/// fewer bytes than the headers cost.
const SMALLEST_COMPRESSED: u64 = 512;

/// Renames `<pkg>/<name>.{js,wasm,css}` to `<name>.<hash>.<ext>` and writes
/// `<site>/hash.txt`.
pub fn fingerprint(site: &Path, name: &str) -> Result<(), String> {
    let pkg = site.join("pkg");
    let mut manifest = String::new();
    for (key, ext) in HASHED {
        let plain = pkg.join(format!("{name}.{ext}"));
        let bytes = std::fs::read(&plain).map_err(|e| format!("reading {}: {e}", plain.display()))?;
        let hash = hex::encode(Sha256::digest(&bytes))[..HASH_CHARS].to_string();
        let hashed = pkg.join(format!("{name}.{hash}.{ext}"));
        std::fs::rename(&plain, &hashed).map_err(|e| format!("renaming {}: {e}", plain.display()))?;
        manifest.push_str(&format!("{key}: {hash}\n"));
    }
    let path = site.join("hash.txt");
    std::fs::write(&path, manifest).map_err(|e| format!("writing {}: {e}", path.display()))
}

/// Writes `<file>.br` and `<file>.gz` beside every file under `site` worth
/// compressing, each only when it is smaller than the file. A release build
/// takes the smallest output (brotli 11, gzip 9); a debug build, whose wasm is
/// ten times larger, quicker settings.
pub fn precompress(site: &Path, release: bool) -> Result<CompressedSizes, String> {
    let mut sizes = CompressedSizes::default();
    for file in files(site)? {
        let bytes = std::fs::read(&file).map_err(|e| format!("reading {}: {e}", file.display()))?;
        if (bytes.len() as u64) < SMALLEST_COMPRESSED {
            continue;
        }
        let (br_quality, gz_level) = if release { (11, 9) } else { (5, 6) };
        let br = brotli_bytes(&bytes, br_quality)?;
        let gz = gzip_bytes(&bytes, gz_level)?;
        sizes.plain += bytes.len() as u64;
        sizes.br += write_if_smaller(&file, "br", &br, bytes.len())?;
        sizes.gz += write_if_smaller(&file, "gz", &gz, bytes.len())?;
    }
    Ok(sizes)
}

/// What `precompress` wrote, summed over the files it compressed.
#[derive(Debug, Default)]
pub struct CompressedSizes {
    pub plain: u64,
    pub br: u64,
    pub gz: u64,
}

fn write_if_smaller(file: &Path, ext: &str, bytes: &[u8], plain: usize) -> Result<u64, String> {
    let mut name = file.as_os_str().to_owned();
    name.push(format!(".{ext}"));
    let path = PathBuf::from(name);
    if bytes.len() >= plain {
        return Ok(plain as u64);
    }
    std::fs::write(&path, bytes).map_err(|e| format!("writing {}: {e}", path.display()))?;
    Ok(bytes.len() as u64)
}

fn brotli_bytes(bytes: &[u8], quality: u32) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut out, 64 * 1024, quality, 22);
        writer.write_all(bytes).map_err(|e| format!("brotli: {e}"))?;
    }
    Ok(out)
}

fn gzip_bytes(bytes: &[u8], level: u32) -> Result<Vec<u8>, String> {
    let mut writer = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    writer.write_all(bytes).map_err(|e| format!("gzip: {e}"))?;
    writer.finish().map_err(|e| format!("gzip: {e}"))
}

/// Every file under `dir`, but for compressed copies.
fn files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("listing {}: {e}", dir.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("listing {}: {e}", dir.display()))?;
        let path = entry.path();
        if entry.file_type().map_err(|e| format!("{}: {e}", path.display()))?.is_dir() {
            out.extend(files(&path)?);
        } else if !matches!(path.extension().and_then(|e| e.to_str()), Some("br" | "gz")) && !path.ends_with("hash.txt")
        {
            out.push(path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_content_and_copies_decompress_to_it() {
        let site = std::env::temp_dir().join(format!("xtask-assets-{}", std::process::id()));
        let pkg = site.join("pkg");
        std::fs::create_dir_all(&pkg).unwrap();
        let text = "body { color: black }\n".repeat(100);
        for ext in ["js", "wasm", "css"] {
            std::fs::write(pkg.join(format!("m.{ext}")), format!("{ext}{text}")).unwrap();
        }
        fingerprint(&site, "m").unwrap();
        let manifest = std::fs::read_to_string(site.join("hash.txt")).unwrap();
        let css_hash = manifest.lines().find_map(|l| l.strip_prefix("css: ")).unwrap();
        assert_eq!(css_hash.len(), HASH_CHARS);
        let css = pkg.join(format!("m.{css_hash}.css"));
        assert!(css.is_file() && !pkg.join("m.css").exists());

        precompress(&site, false).unwrap();
        let mut gz =
            flate2::read::GzDecoder::new(std::fs::File::open(pkg.join(format!("m.{css_hash}.css.gz"))).unwrap());
        let mut back = String::new();
        std::io::Read::read_to_string(&mut gz, &mut back).unwrap();
        assert_eq!(back, format!("css{text}"));
        let mut br =
            brotli::Decompressor::new(std::fs::File::open(pkg.join(format!("m.{css_hash}.css.br"))).unwrap(), 4096);
        back.clear();
        std::io::Read::read_to_string(&mut br, &mut back).unwrap();
        assert_eq!(back, format!("css{text}"));
        assert!(!site.join("hash.txt.gz").exists(), "the manifest is the server's, not the browser's");
        std::fs::remove_dir_all(&site).unwrap();
    }
}
