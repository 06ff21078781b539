//! The parts of OpenSSL's CMS API the `openssl` crate does not wrap
//! (adding signers one by one, S/MIME output and input with detached
//! content, streaming output, signer and recipient lookup), declared over
//! openssl-sys, with owning wrappers that free what they hold.

#![allow(non_camel_case_types)]

use openssl_sys::{
    ASN1_OBJECT, BIO, EVP_CIPHER, EVP_MD, EVP_PKEY, EVP_PKEY_CTX, OPENSSL_STACK, X509, X509_ALGOR,
};
use std::ffi::{c_char, c_int, c_uint, c_void};
use std::marker::PhantomData;

pub use openssl_sys::CMS_ContentInfo;

pub enum CMS_SignerInfo {}
pub enum CMS_RecipientInfo {}
pub enum CMS_RecipientEncryptedKey {}
pub enum X509_STORE {}

pub const CMS_RECIPINFO_TRANS: c_int = 0;
pub const CMS_RECIPINFO_AGREE: c_int = 1;

pub const NID_PKCS7_DATA: c_int = 21;
pub const NID_PKCS7_SIGNED: c_int = 22;
pub const NID_PKCS7_ENVELOPED: c_int = 23;
pub const NID_PKCS9_SIGNING_TIME: c_int = 52;
pub const NID_AUTH_ENVELOPED: c_int = 1059;

pub const V_ASN1_UTCTIME: c_int = 23;
pub const V_ASN1_GENERALIZEDTIME: c_int = 24;

pub const RSA_PKCS1_OAEP_PADDING: c_int = 4;
pub const RSA_PKCS1_PSS_PADDING: c_int = 6;
/// PSS salt as long as the digest (RFC 8551 / RFC 4056 practice).
pub const RSA_PSS_SALTLEN_DIGEST: c_int = -1;

const BIO_NOCLOSE: c_int = 0;

unsafe extern "C" {
    fn CMS_sign(
        signcert: *mut X509,
        pkey: *mut EVP_PKEY,
        certs: *mut OPENSSL_STACK,
        data: *mut BIO,
        flags: c_uint,
    ) -> *mut CMS_ContentInfo;
    fn CMS_add1_signer(
        cms: *mut CMS_ContentInfo,
        signer: *mut X509,
        pk: *mut EVP_PKEY,
        md: *const EVP_MD,
        flags: c_uint,
    ) -> *mut CMS_SignerInfo;
    fn CMS_SignerInfo_get0_pkey_ctx(si: *mut CMS_SignerInfo) -> *mut EVP_PKEY_CTX;
    fn CMS_final(cms: *mut CMS_ContentInfo, data: *mut BIO, dcont: *mut BIO, flags: c_uint) -> c_int;
    fn SMIME_write_CMS(bio: *mut BIO, cms: *mut CMS_ContentInfo, data: *mut BIO, flags: c_int) -> c_int;
    fn i2d_CMS_bio_stream(out: *mut BIO, cms: *mut CMS_ContentInfo, data: *mut BIO, flags: c_int) -> c_int;
    fn PEM_write_bio_CMS_stream(
        out: *mut BIO,
        cms: *mut CMS_ContentInfo,
        data: *mut BIO,
        flags: c_int,
    ) -> c_int;
    fn SMIME_read_CMS(bio: *mut BIO, bcont: *mut *mut BIO) -> *mut CMS_ContentInfo;
    fn d2i_CMS_bio(bio: *mut BIO, cms: *mut *mut CMS_ContentInfo) -> *mut CMS_ContentInfo;
    fn PEM_read_bio_CMS(
        bio: *mut BIO,
        cms: *mut *mut CMS_ContentInfo,
        cb: *mut c_void,
        u: *mut c_void,
    ) -> *mut CMS_ContentInfo;
    fn CMS_ContentInfo_free(cms: *mut CMS_ContentInfo);
    fn CMS_verify(
        cms: *mut CMS_ContentInfo,
        certs: *mut OPENSSL_STACK,
        store: *mut X509_STORE,
        dcont: *mut BIO,
        out: *mut BIO,
        flags: c_uint,
    ) -> c_int;
    fn CMS_get0_SignerInfos(cms: *mut CMS_ContentInfo) -> *mut OPENSSL_STACK;
    fn CMS_SignerInfo_cert_cmp(si: *mut CMS_SignerInfo, cert: *mut X509) -> c_int;
    fn CMS_get1_certs(cms: *mut CMS_ContentInfo) -> *mut OPENSSL_STACK;
    fn CMS_signed_get0_data_by_OBJ(
        si: *const CMS_SignerInfo,
        oid: *const ASN1_OBJECT,
        lastpos: c_int,
        type_: c_int,
    ) -> *mut c_void;
    fn CMS_SignerInfo_get0_algs(
        si: *mut CMS_SignerInfo,
        pk: *mut *mut EVP_PKEY,
        signer: *mut *mut X509,
        pdig: *mut *mut X509_ALGOR,
        psig: *mut *mut X509_ALGOR,
    );
    fn X509_ALGOR_get0(
        paobj: *mut *const ASN1_OBJECT,
        pptype: *mut c_int,
        ppval: *mut *const c_void,
        algor: *const X509_ALGOR,
    );
    fn CMS_get0_type(cms: *const CMS_ContentInfo) -> *const ASN1_OBJECT;
    fn CMS_get0_eContentType(cms: *mut CMS_ContentInfo) -> *const ASN1_OBJECT;
    fn CMS_is_detached(cms: *mut CMS_ContentInfo) -> c_int;
    fn CMS_encrypt(
        certs: *mut OPENSSL_STACK,
        data: *mut BIO,
        cipher: *const EVP_CIPHER,
        flags: c_uint,
    ) -> *mut CMS_ContentInfo;
    fn CMS_add1_recipient_cert(
        cms: *mut CMS_ContentInfo,
        recip: *mut X509,
        flags: c_uint,
    ) -> *mut CMS_RecipientInfo;
    fn CMS_RecipientInfo_get0_pkey_ctx(ri: *mut CMS_RecipientInfo) -> *mut EVP_PKEY_CTX;
    fn CMS_decrypt(
        cms: *mut CMS_ContentInfo,
        pkey: *mut EVP_PKEY,
        cert: *mut X509,
        dcont: *mut BIO,
        out: *mut BIO,
        flags: c_uint,
    ) -> c_int;
    fn CMS_get0_RecipientInfos(cms: *mut CMS_ContentInfo) -> *mut OPENSSL_STACK;
    fn CMS_RecipientInfo_type(ri: *mut CMS_RecipientInfo) -> c_int;
    fn CMS_RecipientInfo_ktri_cert_cmp(ri: *mut CMS_RecipientInfo, cert: *mut X509) -> c_int;
    fn CMS_RecipientInfo_kari_get0_reks(ri: *mut CMS_RecipientInfo) -> *mut OPENSSL_STACK;
    fn CMS_RecipientEncryptedKey_cert_cmp(rek: *mut CMS_RecipientEncryptedKey, cert: *mut X509) -> c_int;
    fn OBJ_nid2obj(n: c_int) -> *mut ASN1_OBJECT;
    fn EVP_PKEY_CTX_set_ecdh_kdf_md(ctx: *mut EVP_PKEY_CTX, md: *const EVP_MD) -> c_int;
    fn OBJ_obj2nid(o: *const ASN1_OBJECT) -> c_int;
    fn OBJ_obj2txt(buf: *mut c_char, buf_len: c_int, a: *const ASN1_OBJECT, no_name: c_int) -> c_int;
    fn BIO_new_fd(fd: c_int, close_flag: c_int) -> *mut BIO;
    fn BIO_new(method: *const openssl_sys::BIO_METHOD) -> *mut BIO;
    fn BIO_s_mem() -> *const openssl_sys::BIO_METHOD;
    fn BIO_new_mem_buf(buf: *const c_void, len: c_int) -> *mut BIO;
    fn BIO_free_all(b: *mut BIO);
    fn BIO_f_buffer() -> *const openssl_sys::BIO_METHOD;
    fn BIO_push(b: *mut BIO, append: *mut BIO) -> *mut BIO;
    fn BIO_ctrl(b: *mut BIO, cmd: c_int, larg: std::ffi::c_long, parg: *mut c_void) -> std::ffi::c_long;
    fn BIO_read(b: *mut BIO, data: *mut c_void, len: c_int) -> c_int;
    fn BIO_write(b: *mut BIO, data: *const c_void, len: c_int) -> c_int;
    fn OPENSSL_sk_num(st: *const OPENSSL_STACK) -> c_int;
    fn OPENSSL_sk_value(st: *const OPENSSL_STACK, i: c_int) -> *mut c_void;
    fn OPENSSL_sk_pop_free(st: *mut OPENSSL_STACK, free: Option<unsafe extern "C" fn(*mut c_void)>);
    fn X509_free(x: *mut X509);
    fn X509_up_ref(x: *mut X509) -> c_int;
}

const BIO_CTRL_INFO: c_int = 3;
const BIO_C_SET_BUF_MEM_EOF_RETURN: c_int = 130;
const BIO_C_SET_BUFF_SIZE: c_int = 117;
const BIO_CTRL_FLUSH: c_int = 11;

/// An OpenSSL BIO this code owns. Input BIOs over a slice borrow it.
pub struct Bio<'a> {
    ptr: *mut BIO,
    _borrow: PhantomData<&'a [u8]>,
}

// A BIO is used by one thread at a time; moving it between threads is fine.
unsafe impl Send for Bio<'_> {}

impl<'a> Bio<'a> {
    fn wrap(ptr: *mut BIO) -> Result<Bio<'a>, openssl::error::ErrorStack> {
        if ptr.is_null() {
            Err(openssl::error::ErrorStack::get())
        } else {
            Ok(Bio { ptr, _borrow: PhantomData })
        }
    }

    /// A growing memory buffer to write into.
    pub fn mem() -> Result<Bio<'static>, openssl::error::ErrorStack> {
        // SAFETY: BIO_s_mem returns a static method table.
        let b = Bio::wrap(unsafe { BIO_new(BIO_s_mem()) })?;
        // Reading an emptied buffer is end of input, not "try again".
        // SAFETY: b is a live memory BIO.
        unsafe { BIO_ctrl(b.ptr, BIO_C_SET_BUF_MEM_EOF_RETURN, 0, std::ptr::null_mut()) };
        Ok(b)
    }

    /// Reads `data`, which must outlive the BIO.
    pub fn slice(data: &'a [u8]) -> Result<Bio<'a>, openssl::error::ErrorStack> {
        let len = c_int::try_from(data.len()).map_err(|_| openssl::error::ErrorStack::get())?;
        // SAFETY: the BIO only reads `data`, which the lifetime keeps alive.
        Bio::wrap(unsafe { BIO_new_mem_buf(data.as_ptr().cast(), len) })
    }

    /// Reads and writes the descriptor `fd`, which stays open and owned by
    /// the caller, and must outlive the BIO.
    pub fn fd(fd: std::os::fd::BorrowedFd<'a>) -> Result<Bio<'a>, openssl::error::ErrorStack> {
        use std::os::fd::AsRawFd;
        // SAFETY: BIO_NOCLOSE: the BIO never closes the borrowed descriptor.
        Bio::wrap(unsafe { BIO_new_fd(fd.as_raw_fd(), BIO_NOCLOSE) })
    }

    /// Reads or writes `fd` through a 64 KiB buffer: S/MIME output comes
    /// in 64-byte lines, and text input is read line by line (a bare
    /// descriptor BIO would make that one read() per byte). Call
    /// [`Bio::flush`] at the end of writing.
    pub fn buffered_fd(fd: std::os::fd::BorrowedFd<'a>) -> Result<Bio<'a>, openssl::error::ErrorStack> {
        let inner = Bio::fd(fd)?;
        // SAFETY: BIO_f_buffer returns a static method table.
        let buf = Bio::wrap(unsafe { BIO_new(BIO_f_buffer()) })?;
        // SAFETY: both live; after the push the chain is freed from `buf`.
        unsafe {
            BIO_ctrl(buf.ptr, BIO_C_SET_BUFF_SIZE, 64 * 1024, std::ptr::null_mut());
            BIO_push(buf.ptr, inner.ptr);
        }
        std::mem::forget(inner);
        Ok(Bio { ptr: buf.into_raw(), _borrow: PhantomData })
    }

    fn into_raw(self) -> *mut BIO {
        let p = self.ptr;
        std::mem::forget(self);
        p
    }

    /// Writes all of `data` (a memory or descriptor BIO).
    pub fn write_all(&self, mut data: &[u8]) -> Result<(), openssl::error::ErrorStack> {
        while !data.is_empty() {
            let chunk = data.len().min(1 << 30);
            // SAFETY: data is readable for chunk bytes.
            let n = unsafe { BIO_write(self.ptr, data.as_ptr().cast(), chunk as c_int) };
            if n <= 0 {
                return Err(openssl::error::ErrorStack::get());
            }
            data = &data[n as usize..];
        }
        Ok(())
    }

    pub fn flush(&self) -> Result<(), openssl::error::ErrorStack> {
        // SAFETY: a live BIO.
        check(unsafe { BIO_ctrl(self.ptr, BIO_CTRL_FLUSH, 0, std::ptr::null_mut()) } as c_int)
    }

    pub fn as_ptr(&self) -> *mut BIO {
        self.ptr
    }

    /// What a memory BIO holds (from where reading has got to).
    pub fn mem_contents(&self) -> Vec<u8> {
        let mut p: *mut c_char = std::ptr::null_mut();
        // SAFETY: BIO_get_mem_data on a memory BIO points p at its data.
        let n = unsafe { BIO_ctrl(self.ptr, BIO_CTRL_INFO, 0, (&mut p as *mut *mut c_char).cast()) };
        if p.is_null() || n <= 0 {
            return Vec::new();
        }
        // SAFETY: p points at n readable bytes owned by the BIO.
        unsafe { std::slice::from_raw_parts(p.cast::<u8>(), n as usize) }.to_vec()
    }

    /// Reads everything left (for BIOs OpenSSL hands back, such as the
    /// detached content of a multipart/signed message), at most `limit`.
    pub fn read_all(&self, limit: usize) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        let mut buf = [0u8; 16 * 1024];
        loop {
            // SAFETY: buf is writable for its length.
            let n = unsafe { BIO_read(self.ptr, buf.as_mut_ptr().cast(), buf.len() as c_int) };
            if n <= 0 {
                return Some(out);
            }
            out.extend_from_slice(&buf[..n as usize]);
            if out.len() > limit {
                return None;
            }
        }
    }
}

impl Drop for Bio<'_> {
    fn drop(&mut self) {
        // SAFETY: we own the BIO and whatever is chained below it.
        unsafe { BIO_free_all(self.ptr) };
    }
}

/// The encodings [`Cms::write`] produces.
#[derive(Clone, Copy)]
pub enum WriteForm {
    Smime,
    Der,
    Pem,
}

/// An owned `CMS_ContentInfo`.
pub struct Cms(*mut CMS_ContentInfo);

unsafe impl Send for Cms {}

impl Drop for Cms {
    fn drop(&mut self) {
        // SAFETY: we own it.
        unsafe { CMS_ContentInfo_free(self.0) };
    }
}

fn cms(ptr: *mut CMS_ContentInfo) -> Result<Cms, openssl::error::ErrorStack> {
    if ptr.is_null() { Err(openssl::error::ErrorStack::get()) } else { Ok(Cms(ptr)) }
}

fn check(r: c_int) -> Result<(), openssl::error::ErrorStack> {
    if r > 0 { Ok(()) } else { Err(openssl::error::ErrorStack::get()) }
}

/// An X509 stack pointer for calls that take `STACK_OF(X509) *` (may be null).
fn stack_ptr(s: Option<&openssl::stack::StackRef<openssl::x509::X509>>) -> *mut OPENSSL_STACK {
    use foreign_types::ForeignTypeRef;
    s.map_or(std::ptr::null_mut(), |s| s.as_ptr().cast())
}

fn x509_ptr(x: &openssl::x509::X509Ref) -> *mut X509 {
    use foreign_types::ForeignTypeRef;
    x.as_ptr()
}

fn pkey_ptr<T>(k: &openssl::pkey::PKeyRef<T>) -> *mut EVP_PKEY {
    use foreign_types::ForeignTypeRef;
    k.as_ptr()
}

impl Cms {
    /// A SignedData without signers yet (CMS_PARTIAL), carrying `certs`;
    /// with neither signers added nor content, a certs-only message.
    pub fn sign_partial(
        certs: Option<&openssl::stack::StackRef<openssl::x509::X509>>,
        flags: c_uint,
    ) -> Result<Cms, openssl::error::ErrorStack> {
        // SAFETY: null signer and key with CMS_PARTIAL are documented.
        cms(unsafe {
            CMS_sign(
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                stack_ptr(certs),
                std::ptr::null_mut(),
                flags,
            )
        })
    }

    /// Adds a signer; returns its SignerInfo's key context (for PSS).
    pub fn add_signer(
        &mut self,
        cert: &openssl::x509::X509Ref,
        key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
        md: openssl::hash::MessageDigest,
        flags: c_uint,
    ) -> Result<*mut EVP_PKEY_CTX, openssl::error::ErrorStack> {
        // SAFETY: all pointers are live; OpenSSL takes its own references.
        let si = unsafe { CMS_add1_signer(self.0, x509_ptr(cert), pkey_ptr(key), md.as_ptr(), flags) };
        if si.is_null() {
            return Err(openssl::error::ErrorStack::get());
        }
        // SAFETY: si belongs to self.
        Ok(unsafe { CMS_SignerInfo_get0_pkey_ctx(si) })
    }

    /// An EnvelopedData (or AuthEnvelopedData for an AEAD cipher) without
    /// recipients yet.
    pub fn encrypt_partial(
        cipher: openssl::symm::Cipher,
        flags: c_uint,
    ) -> Result<Cms, openssl::error::ErrorStack> {
        // SAFETY: an empty recipient list with CMS_PARTIAL is documented.
        cms(unsafe { CMS_encrypt(std::ptr::null_mut(), std::ptr::null_mut(), cipher.as_ptr(), flags) })
    }

    /// Adds a recipient; returns its key context (for OAEP) when it has one.
    pub fn add_recipient(
        &mut self,
        cert: &openssl::x509::X509Ref,
        flags: c_uint,
    ) -> Result<*mut EVP_PKEY_CTX, openssl::error::ErrorStack> {
        // SAFETY: live pointers; OpenSSL takes its own reference.
        let ri = unsafe { CMS_add1_recipient_cert(self.0, x509_ptr(cert), flags) };
        if ri.is_null() {
            return Err(openssl::error::ErrorStack::get());
        }
        // SAFETY: ri belongs to self.
        Ok(unsafe { CMS_RecipientInfo_get0_pkey_ctx(ri) })
    }

    /// Completes a non-streamed structure over `data`.
    pub fn finalize(&mut self, data: &Bio<'_>, flags: c_uint) -> Result<(), openssl::error::ErrorStack> {
        // SAFETY: live pointers.
        check(unsafe { CMS_final(self.0, data.as_ptr(), std::ptr::null_mut(), flags) })
    }

    /// Writes the structure in `form` (an S/MIME entity, DER or PEM),
    /// reading the content from `data` when it was made with CMS_STREAM.
    pub fn write(
        &self,
        form: WriteForm,
        out: &Bio<'_>,
        data: Option<&Bio<'_>>,
        flags: c_uint,
    ) -> Result<(), openssl::error::ErrorStack> {
        let data = data.map_or(std::ptr::null_mut(), Bio::as_ptr);
        let f = match form {
            WriteForm::Smime => SMIME_write_CMS,
            WriteForm::Der => i2d_CMS_bio_stream,
            WriteForm::Pem => PEM_write_bio_CMS_stream,
        };
        // SAFETY: live pointers.
        check(unsafe { f(out.as_ptr(), self.0, data, flags as c_int) })
    }

    /// Reads an S/MIME entity; a multipart/signed one also gives its
    /// first part (the signed content) as a BIO.
    pub fn read_smime(input: &Bio<'_>) -> Result<(Cms, Option<Bio<'static>>), openssl::error::ErrorStack> {
        let mut bcont: *mut BIO = std::ptr::null_mut();
        // SAFETY: live input; bcont receives a BIO we then own.
        let c = cms(unsafe { SMIME_read_CMS(input.as_ptr(), &mut bcont) })?;
        let bcont = (!bcont.is_null()).then_some(Bio { ptr: bcont, _borrow: PhantomData });
        Ok((c, bcont))
    }

    pub fn read_der(input: &Bio<'_>) -> Result<Cms, openssl::error::ErrorStack> {
        // SAFETY: live input.
        cms(unsafe { d2i_CMS_bio(input.as_ptr(), std::ptr::null_mut()) })
    }

    pub fn read_pem(input: &Bio<'_>) -> Result<Cms, openssl::error::ErrorStack> {
        // SAFETY: live input, no password callback (CMS PEM is not encrypted).
        cms(unsafe {
            PEM_read_bio_CMS(input.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut(), std::ptr::null_mut())
        })
    }

    /// The content type's NID (`NID_*` above).
    pub fn type_nid(&self) -> c_int {
        // SAFETY: live structure; the object is borrowed.
        unsafe { OBJ_obj2nid(CMS_get0_type(self.0)) }
    }

    /// Whether a SignedData's content is absent (a detached signature).
    pub fn is_detached(&self) -> bool {
        // SAFETY: live structure.
        unsafe { CMS_is_detached(self.0) == 1 }
    }

    /// The type of a SignedData's encapsulated content (NID), and as text.
    pub fn econtent_type(&self) -> (c_int, String) {
        // SAFETY: live structure; the object is borrowed (null if none).
        let obj = unsafe { CMS_get0_eContentType(self.0) };
        if obj.is_null() {
            return (0, String::new());
        }
        // SAFETY: a live object.
        (unsafe { OBJ_obj2nid(obj) }, obj_text(obj))
    }

    /// The content type as dotted text (for content types psm does not know).
    pub fn type_text(&self) -> String {
        // SAFETY: live structure.
        obj_text(unsafe { CMS_get0_type(self.0) })
    }

    pub fn verify(
        &mut self,
        certs: Option<&openssl::stack::StackRef<openssl::x509::X509>>,
        dcont: Option<&Bio<'_>>,
        out: Option<&Bio<'_>>,
        flags: c_uint,
    ) -> Result<(), openssl::error::ErrorStack> {
        let dcont = dcont.map_or(std::ptr::null_mut(), Bio::as_ptr);
        let out = out.map_or(std::ptr::null_mut(), Bio::as_ptr);
        // SAFETY: live pointers; a null store with CMS_NO_SIGNER_CERT_VERIFY
        // is documented (psm's own verifier checks the chain).
        check(unsafe { CMS_verify(self.0, stack_ptr(certs), std::ptr::null_mut(), dcont, out, flags) })
    }

    fn signer_infos(&self) -> Vec<*mut CMS_SignerInfo> {
        // SAFETY: live structure; the stack is borrowed (null if not SignedData).
        let st = unsafe { CMS_get0_SignerInfos(self.0) };
        stack_items(st)
    }

    pub fn signer_count(&self) -> usize {
        self.signer_infos().len()
    }

    /// The certificates the message carries.
    pub fn certs(&self) -> Vec<openssl::x509::X509> {
        // SAFETY: live structure; CMS_get1_certs returns a new stack of new
        // references, which we take over one by one and then free.
        let st = unsafe { CMS_get1_certs(self.0) };
        let out = stack_items(st)
            .into_iter()
            .map(|p: *mut X509| {
                // SAFETY: take our own reference before the stack drops its.
                unsafe { X509_up_ref(p) };
                // SAFETY: p is a live X509 we now hold a reference to.
                unsafe { <openssl::x509::X509 as foreign_types::ForeignType>::from_ptr(p) }
            })
            .collect();
        if !st.is_null() {
            // SAFETY: st and its references are ours.
            unsafe { OPENSSL_sk_pop_free(st, Some(free_x509)) };
        }
        out
    }

    /// Index of the first signer whose identifier names `cert`.
    pub fn signer_matches(&self, index: usize, cert: &openssl::x509::X509Ref) -> bool {
        self.signer_infos()
            .get(index)
            // SAFETY: live signer info and certificate.
            .is_some_and(|&si| unsafe { CMS_SignerInfo_cert_cmp(si, x509_ptr(cert)) } == 0)
    }

    /// The signing time signer `index` claims, as an ASN1_TIME.
    pub fn signing_time(&self, index: usize) -> Option<&openssl::asn1::Asn1TimeRef> {
        let si = *self.signer_infos().get(index)?;
        // SAFETY: a static object for a known NID.
        let oid = unsafe { OBJ_nid2obj(NID_PKCS9_SIGNING_TIME) };
        for ty in [V_ASN1_UTCTIME, V_ASN1_GENERALIZEDTIME] {
            // SAFETY: live signer info; the value is borrowed from it.
            let p = unsafe { CMS_signed_get0_data_by_OBJ(si, oid, -3, ty) };
            if !p.is_null() {
                // SAFETY: the attribute value of this type is an ASN1_TIME
                // that lives as long as self.
                return Some(unsafe {
                    <openssl::asn1::Asn1TimeRef as foreign_types::ForeignTypeRef>::from_ptr(p.cast())
                });
            }
        }
        None
    }

    /// The digest algorithm of signer `index` ("sha256", or dotted OID).
    pub fn signer_digest(&self, index: usize) -> String {
        let Some(&si) = self.signer_infos().get(index) else { return String::new() };
        let mut dig: *mut X509_ALGOR = std::ptr::null_mut();
        let mut obj: *const ASN1_OBJECT = std::ptr::null();
        // SAFETY: live signer info; the outputs are borrowed from it.
        unsafe {
            CMS_SignerInfo_get0_algs(
                si,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut dig,
                std::ptr::null_mut(),
            );
            if dig.is_null() {
                return String::new();
            }
            X509_ALGOR_get0(&mut obj, std::ptr::null_mut(), std::ptr::null_mut(), dig);
        }
        obj_text(obj)
    }

    fn recipient_infos(&self) -> Vec<*mut CMS_RecipientInfo> {
        // SAFETY: live structure; borrowed stack (null if not enveloped).
        stack_items(unsafe { CMS_get0_RecipientInfos(self.0) })
    }

    pub fn recipient_count(&self) -> usize {
        self.recipient_infos().len()
    }

    /// Whether some RecipientInfo is for `cert` (key transport or key
    /// agreement, by issuer and serial or subject key identifier).
    pub fn is_recipient(&self, cert: &openssl::x509::X509Ref) -> bool {
        self.recipient_infos().into_iter().any(|ri| {
            // SAFETY: live recipient info and certificate.
            unsafe {
                match CMS_RecipientInfo_type(ri) {
                    CMS_RECIPINFO_TRANS => CMS_RecipientInfo_ktri_cert_cmp(ri, x509_ptr(cert)) == 0,
                    CMS_RECIPINFO_AGREE => stack_items(CMS_RecipientInfo_kari_get0_reks(ri)).into_iter().any(
                        |rek: *mut CMS_RecipientEncryptedKey| {
                            CMS_RecipientEncryptedKey_cert_cmp(rek, x509_ptr(cert)) == 0
                        },
                    ),
                    _ => false,
                }
            }
        })
    }

    pub fn decrypt(
        &mut self,
        key: &openssl::pkey::PKeyRef<openssl::pkey::Private>,
        cert: &openssl::x509::X509Ref,
        dcont: Option<&Bio<'_>>,
        out: &Bio<'_>,
        flags: c_uint,
    ) -> Result<(), openssl::error::ErrorStack> {
        let dcont = dcont.map_or(std::ptr::null_mut(), Bio::as_ptr);
        // SAFETY: live pointers.
        check(unsafe { CMS_decrypt(self.0, pkey_ptr(key), x509_ptr(cert), dcont, out.as_ptr(), flags) })
    }
}

unsafe extern "C" fn free_x509(p: *mut c_void) {
    // SAFETY: called by OPENSSL_sk_pop_free on each X509 reference we own.
    unsafe { X509_free(p.cast()) }
}

fn stack_items<T>(st: *mut OPENSSL_STACK) -> Vec<*mut T> {
    if st.is_null() {
        return Vec::new();
    }
    // SAFETY: a live stack; items are borrowed.
    let n = unsafe { OPENSSL_sk_num(st) };
    (0..n.max(0)).map(|i| unsafe { OPENSSL_sk_value(st, i) }.cast()).collect()
}

fn obj_text(obj: *const ASN1_OBJECT) -> String {
    if obj.is_null() {
        return String::new();
    }
    let mut buf = [0 as c_char; 128];
    // SAFETY: buf is writable; OBJ_obj2txt NUL-terminates within its length.
    let n = unsafe { OBJ_obj2txt(buf.as_mut_ptr(), buf.len() as c_int, obj, 0) };
    if n <= 0 {
        return String::new();
    }
    // SAFETY: NUL-terminated by OBJ_obj2txt.
    unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }.to_string_lossy().into_owned()
}

/// Sets RSA padding (and for PSS the salt length, for OAEP the digest) on
/// a signer's or recipient's key context.
///
/// # Safety
/// `ctx` is null or the live key context of a signer or recipient of a
/// structure that is still alive.
pub unsafe fn set_rsa_padding(
    ctx: *mut EVP_PKEY_CTX,
    padding: c_int,
    md: Option<openssl::hash::MessageDigest>,
) -> Result<(), openssl::error::ErrorStack> {
    if ctx.is_null() {
        return Err(openssl::error::ErrorStack::get());
    }
    // SAFETY: a live context from CMS_*_get0_pkey_ctx.
    unsafe {
        check(openssl_sys::EVP_PKEY_CTX_set_rsa_padding(ctx, padding))?;
        if padding == RSA_PKCS1_PSS_PADDING {
            check(openssl_sys::EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST))?;
        }
        if let Some(md) = md {
            check(openssl_sys::EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md.as_ptr() as *mut EVP_MD))?;
            check(openssl_sys::EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md.as_ptr() as *mut EVP_MD))?;
        }
    }
    Ok(())
}

/// Sets the KDF digest of an ECDH (key agreement) recipient's key context.
///
/// # Safety
/// As [`set_rsa_padding`].
pub unsafe fn set_ecdh_kdf(
    ctx: *mut EVP_PKEY_CTX,
    md: openssl::hash::MessageDigest,
) -> Result<(), openssl::error::ErrorStack> {
    if ctx.is_null() {
        return Err(openssl::error::ErrorStack::get());
    }
    // SAFETY: a live context from CMS_RecipientInfo_get0_pkey_ctx.
    check(unsafe { EVP_PKEY_CTX_set_ecdh_kdf_md(ctx, md.as_ptr()) })
}
