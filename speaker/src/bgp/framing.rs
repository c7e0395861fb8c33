//! The BGP codec on a tokio stream: `tokio_util::codec::Framed` calls these, and they call the
//! pure framing of [`ferrolb_speaker_core::bgp::codec`]. The only state is the negotiated AS
//! number width, which the session sets after OPEN.

use bytes::BytesMut;
use ferrolb_speaker_core::bgp::codec::{self, CodecError, Decoded, Message};
use tokio_util::codec::{Decoder, Encoder};

/// The framing codec used with `tokio_util::codec::Framed`.
#[derive(Debug, Default)]
pub struct BgpFrameCodec {
    four_octet_as: bool,
}

impl BgpFrameCodec {
    /// A codec before OPEN negotiation: AS_PATH in received UPDATEs is read as 2-octet until
    /// [`set_four_octet_as`](Self::set_four_octet_as) says both sides announced 4-octet AS.
    pub fn new() -> Self {
        BgpFrameCodec::default()
    }

    /// Sets the negotiated 4-octet AS capability (both sides announced it).
    pub fn set_four_octet_as(&mut self, value: bool) {
        self.four_octet_as = value;
    }
}

impl Decoder for BgpFrameCodec {
    type Item = Decoded;
    type Error = CodecError;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Decoded>, CodecError> {
        codec::decode(buf, self.four_octet_as)
    }
}

impl Encoder<Message> for BgpFrameCodec {
    type Error = CodecError;

    fn encode(&mut self, msg: Message, dst: &mut BytesMut) -> Result<(), CodecError> {
        codec::encode_into(msg, dst)
    }
}
