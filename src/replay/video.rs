//! An H.264 video file written with FFmpeg's encoder (libx264): RGB pictures in,
//! a `.mp4` (or any container FFmpeg knows by the file's extension) out.
//!
//! Pictures are converted to YUV 4:2:0 (what every player reads), cropped to
//! an even size as 4:2:0 needs; each is shown at its own stream time
//! (milliseconds), so a replay's video keeps the source's timing whatever
//! the analysis rate.

use std::path::{Path, PathBuf};
use std::time::Duration;

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("{path}: {what}: {source}")]
    Ffmpeg {
        path: PathBuf,
        what: &'static str,
        source: ff::Error,
    },
    #[error("{path}: FFmpeg has no H.264 encoder (install libavcodec with libx264)")]
    NoEncoder { path: PathBuf },
    #[error("{path}: picture is {got:?}, the video is {want:?}")]
    Size {
        path: PathBuf,
        got: (u32, u32),
        want: (u32, u32),
    },
}

pub struct VideoWriter {
    path: PathBuf,
    out: ff::format::context::Output,
    encoder: ff::encoder::Video,
    scaler: scaling::Context,
    rgb: ff::frame::Video,
    yuv: ff::frame::Video,
    size: (u32, u32),
    encoder_tb: ff::Rational,
    stream_tb: ff::Rational,
    /// Pictures pushed.
    count: i64,
    /// The last picture's time, milliseconds.
    last_ms: Option<i64>,
    /// A picture's nominal duration, milliseconds: given to packets the encoder
    /// leaves without one, so the container's edit list keeps the last picture.
    frame_ms: i64,
}

impl VideoWriter {
    /// A new video of `width × height` pictures, about `fps` a second.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self, VideoError> {
        let err = |what: &'static str| {
            let path = path.to_owned();
            move |source| VideoError::Ffmpeg { path, what, source }
        };
        ff::init().map_err(err("initialising FFmpeg"))?;
        let mut out = ff::format::output(&path).map_err(err("creating the file"))?;
        let codec = ff::encoder::find_by_name("libx264")
            .or_else(|| ff::encoder::find(ff::codec::Id::H264))
            .ok_or_else(|| VideoError::NoEncoder {
                path: path.to_owned(),
            })?;
        let global_header = out
            .format()
            .flags()
            .contains(ff::format::Flags::GLOBAL_HEADER);
        let (ew, eh) = (width & !1, height & !1);
        let tb = ff::Rational::new(1, 1000);
        let rate = ff::Rational::new((fps * 1000.0).round().max(1.0) as i32, 1000);
        let mut stream = out.add_stream(codec).map_err(err("adding a stream"))?;
        let mut enc = ff::codec::context::Context::new_with_codec(codec)
            .encoder()
            .video()
            .map_err(err("making the encoder"))?;
        enc.set_width(ew);
        enc.set_height(eh);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(tb);
        enc.set_frame_rate(Some(rate));
        if global_header {
            enc.set_flags(ff::codec::Flags::GLOBAL_HEADER);
        }
        let mut opts = ff::Dictionary::new();
        opts.set("preset", "veryfast");
        opts.set("crf", "23");
        let encoder = enc
            .open_as_with(codec, opts)
            .map_err(err("opening the encoder"))?;
        stream.set_parameters(&encoder);
        stream.set_time_base(tb);
        let index = stream.index();
        out.write_header().map_err(err("writing the header"))?;
        let stream_tb = out.stream(index).expect("added above").time_base();
        let scaler = scaling::Context::get(
            Pixel::RGB24,
            width,
            height,
            Pixel::YUV420P,
            ew,
            eh,
            scaling::Flags::BILINEAR,
        )
        .map_err(err("making the colour converter"))?;
        Ok(Self {
            path: path.to_owned(),
            out,
            encoder,
            scaler,
            rgb: ff::frame::Video::new(Pixel::RGB24, width, height),
            yuv: ff::frame::Video::new(Pixel::YUV420P, ew, eh),
            size: (width, height),
            encoder_tb: tb,
            stream_tb,
            count: 0,
            last_ms: None,
            frame_ms: (1000.0 / fps.max(0.001)).round().max(1.0) as i64,
        })
    }

    /// Appends one picture, shown at `at` (stream time; never before the last one's).
    pub fn push(&mut self, img: &image::RgbImage, at: Duration) -> Result<(), VideoError> {
        if img.dimensions() != self.size {
            return Err(VideoError::Size {
                path: self.path.clone(),
                got: img.dimensions(),
                want: self.size,
            });
        }
        let row = self.size.0 as usize * 3;
        let stride = self.rgb.stride(0);
        let plane = self.rgb.data_mut(0);
        for (y, src) in img.as_raw().chunks_exact(row).enumerate() {
            plane[y * stride..y * stride + row].copy_from_slice(src);
        }
        let path = self.path.clone();
        self.scaler
            .run(&self.rgb, &mut self.yuv)
            .map_err(|source| VideoError::Ffmpeg {
                path,
                what: "converting a picture",
                source,
            })?;
        let ms = at.as_millis() as i64;
        let ms = self.last_ms.map_or(ms, |last| ms.max(last + 1));
        self.last_ms = Some(ms);
        self.yuv.set_pts(Some(ms));
        self.count += 1;
        self.encoder
            .send_frame(&self.yuv)
            .map_err(self.error("encoding"))?;
        self.drain()
    }

    /// Pictures pushed so far.
    pub fn frames(&self) -> i64 {
        self.count
    }

    /// Flushes the encoder and writes the file's trailer.
    pub fn finish(mut self) -> Result<(), VideoError> {
        self.encoder.send_eof().map_err(self.error("flushing"))?;
        self.drain()?;
        self.out
            .write_trailer()
            .map_err(self.error("writing the trailer"))
    }

    fn error(&self, what: &'static str) -> impl FnOnce(ff::Error) -> VideoError + use<> {
        let path = self.path.clone();
        move |source| VideoError::Ffmpeg { path, what, source }
    }

    fn drain(&mut self) -> Result<(), VideoError> {
        let mut packet = ff::Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            if packet.duration() <= 0 {
                packet.set_duration(self.frame_ms);
            }
            packet.rescale_ts(self.encoder_tb, self.stream_tb);
            packet
                .write_interleaved(&mut self.out)
                .map_err(self.error("writing a packet"))?;
        }
        Ok(())
    }
}

/// The length of the media file at `url`, when its container says.
pub fn duration(url: &str) -> Option<Duration> {
    ff::init().ok()?;
    let input = ff::format::input(&url).ok()?;
    let us = input.duration();
    (us > 0).then(|| Duration::from_micros(us as u64))
}
