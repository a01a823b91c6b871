//! Renders a tmux pane capture into a PNG for the bot's `/screenshot` command.
//!
//! A pane sent as a text message loses its colours and, in proportional fonts, its layout (TUI
//! boxes, aligned columns). A picture keeps both. The input is what `tmux capture-pane -p -e`
//! prints: lines of text with ANSI SGR escapes. [`parse`] turns it into a [`Grid`] of styled
//! cells; [`render_grid`] paints the grid with a bundled DejaVu Sans Mono (see
//! `center/assets/fonts/LICENSE-DejaVu.txt`) on a dark theme and encodes an RGB PNG whose size
//! Telegram's `sendPhoto` accepts. Both are total: no input makes them panic.

use std::collections::HashMap;

use ab_glyph::{Font, FontRef, GlyphId, PxScale, ScaleFont, point};

/// The bundled regular face.
const FONT_REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono.ttf");
/// The bundled bold face.
const FONT_BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSansMono-Bold.ttf");

/// Font size in pixels per em.
pub const FONT_EM_PX: f32 = 14.0;
/// Blank margin around the cells, in pixels.
pub const PADDING: u32 = 8;
/// The image is never narrower than this many columns.
pub const MIN_COLS: usize = 20;
/// Columns beyond this are dropped.
pub const MAX_COLS: usize = 300;
/// Only the last this many rows are drawn.
pub const MAX_ROWS: usize = 200;
/// Telegram's `sendPhoto` limit on width + height.
const MAX_SIDES_SUM: u32 = 10_000;
/// Telegram's `sendPhoto` limit on the ratio of the longer side to the shorter.
const MAX_ASPECT: u32 = 20;
/// Tab stops are every this many columns.
const TAB_WIDTH: usize = 8;

/// Why a pane could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum PaneImageError {
    /// The bundled font did not parse (a build problem, not an input problem).
    #[error("the bundled font is invalid: {0}")]
    Font(#[from] ab_glyph::InvalidFont),
    /// The PNG encoder failed.
    #[error("encoding the PNG failed: {0}")]
    Encode(#[from] png::EncodingError),
}

/// An 8-bit RGB colour.
pub type Rgb = [u8; 3];

/// A colour as the terminal program asked for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Color {
    /// The theme's default foreground or background.
    #[default]
    Default,
    /// One of the 256 indexed colours (0–15 are the theme's palette).
    Indexed(u8),
    /// A truecolour value.
    Rgb(u8, u8, u8),
}

/// The graphic rendition of a cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Style {
    /// Foreground colour.
    pub fg: Color,
    /// Background colour.
    pub bg: Color,
    /// Drawn with the bold face.
    pub bold: bool,
    /// Foreground blended halfway into the background.
    pub dim: bool,
    /// Recorded but drawn upright: only upright faces are bundled.
    pub italic: bool,
    /// A line under the glyph.
    pub underline: bool,
    /// A line through the glyph.
    pub strike: bool,
    /// Foreground and background swapped.
    pub reverse: bool,
    /// The glyph is not drawn.
    pub hidden: bool,
}

/// One terminal cell.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    /// The character; `' '` in the right half of a wide character.
    pub ch: char,
    /// 1 for a normal cell, 2 for the left half of a wide character, 0 for its right half.
    pub width: u8,
    /// How the cell is drawn.
    pub style: Style,
}

impl Cell {
    /// Whether the cell looks exactly like the empty terminal background.
    fn is_blank(&self) -> bool {
        let s = self.style;
        self.width == 1
            && self.ch == ' '
            && s.bg == Color::Default
            && !s.reverse
            && !s.underline
            && !s.strike
    }
}

/// A parsed capture: rows of cells, trailing blank cells and rows removed, at most
/// [`MAX_COLS`] wide and [`MAX_ROWS`] high (the last rows are kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grid {
    rows: Vec<Vec<Cell>>,
}

impl Grid {
    /// The rows, top to bottom.
    pub fn rows(&self) -> &[Vec<Cell>] {
        &self.rows
    }

    /// How many columns the image shows: the longest row, clamped to
    /// [`MIN_COLS`]..=[`MAX_COLS`].
    pub fn cols(&self) -> usize {
        let longest = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        longest.clamp(MIN_COLS, MAX_COLS)
    }

    /// How many rows the image shows: at least one, so a blank pane is still a picture.
    pub fn visible_rows(&self) -> usize {
        self.rows.len().max(1)
    }
}

/// Renders a `tmux capture-pane -p -e` capture to PNG bytes.
pub fn render_png(ansi: &str) -> Result<Vec<u8>, PaneImageError> {
    render_grid(&parse(ansi))
}

/// Paints `grid` and encodes it as an RGB 8-bit PNG.
pub fn render_grid(grid: &Grid) -> Result<Vec<u8>, PaneImageError> {
    let canvas = paint(grid)?;
    encode_png(&canvas)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// Parses a capture into a [`Grid`]. Text and SGR escapes are interpreted; every other escape
/// sequence (cursor movement, OSC hyperlinks, DCS, …) and control character is skipped.
pub fn parse(ansi: &str) -> Grid {
    let mut parser = Parser::default();
    let mut chars = ansi.chars().peekable();
    while let Some(ch) = chars.next() {
        match ch {
            '\x1b' => parser.escape(&mut chars),
            '\n' => parser.rows.push(Vec::new()),
            '\t' => parser.tab(),
            c if c.is_control() => {}
            c => parser.print(c),
        }
    }
    parser.finish()
}

type Chars<'a> = std::iter::Peekable<std::str::Chars<'a>>;

/// The state carried through a capture: tmux emits a style once and relies on it persisting,
/// across line ends too.
struct Parser {
    rows: Vec<Vec<Cell>>,
    style: Style,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            rows: vec![Vec::new()],
            style: Style::default(),
        }
    }
}

impl Parser {
    fn row(&mut self) -> &mut Vec<Cell> {
        if self.rows.is_empty() {
            self.rows.push(Vec::new());
        }
        let last = self.rows.len() - 1;
        &mut self.rows[last]
    }

    fn print(&mut self, ch: char) {
        let width = char_width(ch);
        let style = self.style;
        let row = self.row();
        if width == 0 || row.len() + usize::from(width) > MAX_COLS {
            return;
        }
        row.push(Cell { ch, width, style });
        if width == 2 {
            row.push(Cell {
                ch: ' ',
                width: 0,
                style,
            });
        }
    }

    fn tab(&mut self) {
        let col = self.row().len();
        let next = (col / TAB_WIDTH + 1) * TAB_WIDTH;
        for _ in col..next.min(MAX_COLS) {
            self.print(' ');
        }
    }

    /// Consumes the escape sequence after an ESC.
    fn escape(&mut self, chars: &mut Chars<'_>) {
        match chars.peek().copied() {
            Some('[') => {
                chars.next();
                if let Some(params) = read_csi(chars) {
                    apply_sgr(&mut self.style, &params);
                }
            }
            Some(']' | 'P' | 'X' | '^' | '_') => {
                chars.next();
                skip_string(chars);
            }
            Some(_) => skip_short_escape(chars),
            None => {}
        }
    }

    fn finish(self) -> Grid {
        let mut rows = self.rows;
        for row in &mut rows {
            while row.last().is_some_and(Cell::is_blank) {
                row.pop();
            }
        }
        while rows.last().is_some_and(Vec::is_empty) {
            rows.pop();
        }
        let excess = rows.len().saturating_sub(MAX_ROWS);
        rows.drain(..excess);
        Grid { rows }
    }
}

/// Reads a CSI sequence after `ESC [`; returns its parameters when it is an SGR (`…m`) and
/// `None` for anything else. A character that cannot belong to a CSI ends it unconsumed.
fn read_csi(chars: &mut Chars<'_>) -> Option<String> {
    let mut params = String::new();
    let mut plain = true;
    while let Some(&c) = chars.peek() {
        match c {
            '0'..='9' | ';' | ':' => params.push(c),
            '<' | '=' | '>' | '?' | ' '..='/' => plain = false,
            '@'..='~' => {
                chars.next();
                return (c == 'm' && plain).then_some(params);
            }
            _ => return None,
        }
        chars.next();
    }
    None
}

/// Skips an OSC/DCS/SOS/PM/APC body up to BEL or ST (`ESC \`). A newline also ends it, so an
/// unterminated string cannot swallow the rest of the capture.
fn skip_string(chars: &mut Chars<'_>) {
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => return,
            '\x07' | '\u{9c}' => {
                chars.next();
                return;
            }
            '\x1b' => {
                chars.next();
                if chars.peek() == Some(&'\\') {
                    chars.next();
                }
                return;
            }
            _ => {
                chars.next();
            }
        }
    }
}

/// Skips a two-character escape such as `ESC ( B` or `ESC =`: intermediates, then one final.
fn skip_short_escape(chars: &mut Chars<'_>) {
    while let Some(&c) = chars.peek() {
        match c {
            ' '..='/' => {
                chars.next();
            }
            '0'..='~' => {
                chars.next();
                return;
            }
            _ => return,
        }
    }
}

/// Applies an SGR parameter string such as `1;38;5;208` or `38:2::255:0:0`.
fn apply_sgr(style: &mut Style, params: &str) {
    let groups: Vec<Vec<u16>> = params
        .split(';')
        .map(|group| group.split(':').map(parse_param).collect())
        .collect();
    let mut i = 0;
    while let Some(group) = groups.get(i) {
        let code = group.first().copied().unwrap_or(0);
        let sub = group.get(1..).unwrap_or_default();
        match code {
            38 | 48 | 58 => {
                let colour = if sub.is_empty() {
                    let args: Vec<u16> = groups
                        .iter()
                        .skip(i + 1)
                        .take(4)
                        .map(|g| g.first().copied().unwrap_or(0))
                        .collect();
                    let (colour, used) = extended_colour(&args);
                    i += used;
                    colour
                } else {
                    extended_colour_colon(sub)
                };
                set_extended(style, code, colour);
            }
            4 => style.underline = sub.first().is_none_or(|&kind| kind != 0),
            _ => apply_simple(style, code),
        }
        i += 1;
    }
}

/// A decimal parameter; empty means 0, overflow saturates.
fn parse_param(text: &str) -> u16 {
    text.bytes().filter(u8::is_ascii_digit).fold(0u16, |n, d| {
        n.saturating_mul(10).saturating_add(u16::from(d - b'0'))
    })
}

/// `5;n` or `2;r;g;b` after a `38`/`48` in semicolon form: the colour and how many parameters
/// it used.
fn extended_colour(args: &[u16]) -> (Option<Color>, usize) {
    match args {
        [5, n, ..] => (Some(Color::Indexed(clamp_u8(*n))), 2),
        [2, r, g, b, ..] => (Some(rgb(*r, *g, *b)), 4),
        [5] => (None, 1),
        [2, rest @ ..] => (None, 1 + rest.len()),
        _ => (None, 0),
    }
}

/// `5:n`, `2:r:g:b` or `2:colourspace:r:g:b` in colon form.
fn extended_colour_colon(sub: &[u16]) -> Option<Color> {
    match sub {
        [5, n, ..] => Some(Color::Indexed(clamp_u8(*n))),
        [2, _, r, g, b, ..] => Some(rgb(*r, *g, *b)),
        [2, r, g, b] => Some(rgb(*r, *g, *b)),
        _ => None,
    }
}

fn rgb(r: u16, g: u16, b: u16) -> Color {
    Color::Rgb(clamp_u8(r), clamp_u8(g), clamp_u8(b))
}

fn clamp_u8(n: u16) -> u8 {
    u8::try_from(n).unwrap_or(u8::MAX)
}

/// Sets the colour chosen by `38`/`48`; `58` (underline colour) is not drawn.
fn set_extended(style: &mut Style, code: u16, colour: Option<Color>) {
    match (code, colour) {
        (38, Some(c)) => style.fg = c,
        (48, Some(c)) => style.bg = c,
        _ => {}
    }
}

/// Applies a single-number SGR code; unknown codes are ignored.
fn apply_simple(style: &mut Style, code: u16) {
    match code {
        0 => *style = Style::default(),
        1 => style.bold = true,
        2 => style.dim = true,
        3 => style.italic = true,
        4 | 21 => style.underline = true,
        7 => style.reverse = true,
        8 => style.hidden = true,
        9 => style.strike = true,
        22 => (style.bold, style.dim) = (false, false),
        23 => style.italic = false,
        24 => style.underline = false,
        27 => style.reverse = false,
        28 => style.hidden = false,
        29 => style.strike = false,
        30..=37 => style.fg = Color::Indexed(clamp_u8(code - 30)),
        39 => style.fg = Color::Default,
        40..=47 => style.bg = Color::Indexed(clamp_u8(code - 40)),
        49 => style.bg = Color::Default,
        90..=97 => style.fg = Color::Indexed(clamp_u8(code - 90 + 8)),
        100..=107 => style.bg = Color::Indexed(clamp_u8(code - 100 + 8)),
        _ => {}
    }
}

/// How many cells `ch` takes: 0 for combining marks and other zero-width characters, 2 for
/// East Asian wide/fullwidth characters and emoji, 1 otherwise (the Unicode tables, as
/// terminals use them; control characters take none).
pub fn char_width(ch: char) -> u8 {
    use unicode_width::UnicodeWidthChar;
    ch.width().map_or(0, |w| w.min(2) as u8)
}

// ---------------------------------------------------------------------------------------------
// Theme
// ---------------------------------------------------------------------------------------------

/// Default foreground: light grey.
pub const DEFAULT_FG: Rgb = [0xcc, 0xcc, 0xcc];
/// Default background: near-black.
pub const DEFAULT_BG: Rgb = [0x1e, 0x1e, 0x1e];

/// The 16 theme colours (those of VS Code's dark terminal).
pub const PALETTE: [Rgb; 16] = [
    [0x00, 0x00, 0x00],
    [0xcd, 0x31, 0x31],
    [0x0d, 0xbc, 0x79],
    [0xe5, 0xe5, 0x10],
    [0x24, 0x72, 0xc8],
    [0xbc, 0x3f, 0xbc],
    [0x11, 0xa8, 0xcd],
    [0xe5, 0xe5, 0xe5],
    [0x66, 0x66, 0x66],
    [0xf1, 0x4c, 0x4c],
    [0x23, 0xd1, 0x8b],
    [0xf5, 0xf5, 0x43],
    [0x3b, 0x8e, 0xea],
    [0xd6, 0x70, 0xd6],
    [0x29, 0xb8, 0xdb],
    [0xff, 0xff, 0xff],
];

/// The RGB value of an indexed colour: the palette, the 6×6×6 cube, then 24 greys.
pub fn indexed_rgb(index: u8) -> Rgb {
    const LEVELS: [u8; 6] = [0, 95, 135, 175, 215, 255];
    match index {
        0..=15 => PALETTE[usize::from(index)],
        16..=231 => {
            let i = usize::from(index - 16);
            [LEVELS[i / 36], LEVELS[(i / 6) % 6], LEVELS[i % 6]]
        }
        _ => {
            let grey = 8 + 10 * (index - 232);
            [grey; 3]
        }
    }
}

fn colour_rgb(colour: Color, default: Rgb) -> Rgb {
    match colour {
        Color::Default => default,
        Color::Indexed(i) => indexed_rgb(i),
        Color::Rgb(r, g, b) => [r, g, b],
    }
}

/// The foreground and background a style paints with, after reverse, dim and hidden.
fn resolve(style: Style) -> (Rgb, Rgb) {
    let mut fg = colour_rgb(style.fg, DEFAULT_FG);
    let mut bg = colour_rgb(style.bg, DEFAULT_BG);
    if style.reverse {
        std::mem::swap(&mut fg, &mut bg);
    }
    if style.dim {
        fg = mix(bg, fg, 128);
    }
    if style.hidden {
        fg = bg;
    }
    (fg, bg)
}

/// `under` covered by `over` at `alpha`/255.
fn mix(under: Rgb, over: Rgb, alpha: u8) -> Rgb {
    let a = u16::from(alpha);
    let channel = |u: u8, o: u8| {
        let v = (u16::from(u) * (255 - a) + u16::from(o) * a + 127) / 255;
        u8::try_from(v).unwrap_or(u8::MAX)
    };
    [
        channel(under[0], over[0]),
        channel(under[1], over[1]),
        channel(under[2], over[2]),
    ]
}

// ---------------------------------------------------------------------------------------------
// Painting
// ---------------------------------------------------------------------------------------------

/// An RGB pixel buffer.
struct Canvas {
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

impl Canvas {
    fn new(width: u32, height: u32, fill: Rgb) -> Self {
        let len = width as usize * height as usize;
        Self {
            width,
            height,
            pixels: fill.repeat(len),
        }
    }

    fn offset(&self, x: u32, y: u32) -> Option<usize> {
        (x < self.width && y < self.height)
            .then(|| (y as usize * self.width as usize + x as usize) * 3)
    }

    fn fill_rect(&mut self, x: u32, y: u32, w: u32, h: u32, colour: Rgb) {
        let x_end = x.saturating_add(w).min(self.width);
        let y_end = y.saturating_add(h).min(self.height);
        if x >= x_end {
            return;
        }
        let stride = self.width as usize * 3;
        for row in y..y_end {
            let start = row as usize * stride + x as usize * 3;
            let end = row as usize * stride + x_end as usize * 3;
            for px in self.pixels[start..end].chunks_exact_mut(3) {
                px.copy_from_slice(&colour);
            }
        }
    }

    /// Blends `colour` over the pixel at (`x`, `y`) with coverage `alpha`; off-canvas is a no-op.
    fn blend(&mut self, x: i64, y: i64, colour: Rgb, alpha: u8) {
        let (Ok(x), Ok(y)) = (u32::try_from(x), u32::try_from(y)) else {
            return;
        };
        let Some(at) = self.offset(x, y) else {
            return;
        };
        let px = &mut self.pixels[at..at + 3];
        let under = [px[0], px[1], px[2]];
        px.copy_from_slice(&mix(under, colour, alpha));
    }
}

/// Cell geometry derived from the font.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Metrics {
    cell_w: u32,
    cell_h: u32,
    /// Baseline offset from the top of a cell.
    baseline: u32,
}

/// Both bundled faces at [`FONT_EM_PX`].
struct Fonts {
    regular: FontRef<'static>,
    bold: FontRef<'static>,
    scale: PxScale,
}

impl Fonts {
    fn load() -> Result<Self, PaneImageError> {
        let regular = FontRef::try_from_slice(FONT_REGULAR)?;
        let bold = FontRef::try_from_slice(FONT_BOLD)?;
        let units_per_em = regular.units_per_em().unwrap_or(2048.0);
        let scale = PxScale::from(FONT_EM_PX * regular.height_unscaled() / units_per_em);
        Ok(Self {
            regular,
            bold,
            scale,
        })
    }

    fn face(&self, bold: bool) -> &FontRef<'static> {
        if bold { &self.bold } else { &self.regular }
    }

    fn metrics(&self) -> Metrics {
        let scaled = self.regular.as_scaled(self.scale);
        let advance = scaled.h_advance(self.regular.glyph_id('M'));
        let height = scaled.ascent() - scaled.descent() + scaled.line_gap();
        Metrics {
            cell_w: px(advance.round()).max(1),
            cell_h: px(height.round()).max(1),
            baseline: px(scaled.ascent().round()),
        }
    }
}

/// A non-negative pixel count from a float (NaN and negatives become 0).
fn px(value: f32) -> u32 {
    if value.is_finite() && value > 0.0 {
        value as u32
    } else {
        0
    }
}

/// How a character is drawn, rasterised once per render.
enum Raster {
    /// Nothing to draw (a space).
    Blank,
    /// The font lacks the character: a box is drawn.
    Missing,
    /// Coverage relative to the cell's top-left corner.
    Bitmap {
        left: i64,
        top: i64,
        width: u32,
        coverage: Vec<u8>,
    },
}

/// Rasterises `ch` with its origin at the cell's top-left corner.
fn rasterise(fonts: &Fonts, metrics: Metrics, ch: char, bold: bool) -> Raster {
    let font = fonts.face(bold);
    let id = font.glyph_id(ch);
    if id == GlyphId(0) {
        return if ch == ' ' {
            Raster::Blank
        } else {
            Raster::Missing
        };
    }
    let glyph = id.with_scale_and_position(fonts.scale, point(0.0, metrics.baseline as f32));
    let Some(outlined) = font.outline_glyph(glyph) else {
        return Raster::Blank;
    };
    let bounds = outlined.px_bounds();
    let width = px(bounds.width());
    let height = px(bounds.height());
    let mut coverage = vec![0u8; width as usize * height as usize];
    outlined.draw(|x, y, c| {
        let at = y as usize * width as usize + x as usize;
        if let Some(slot) = coverage.get_mut(at) {
            *slot = (c.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    });
    Raster::Bitmap {
        left: bounds.min.x as i64,
        top: bounds.min.y as i64,
        width,
        coverage,
    }
}

/// The image size for a grid, before fitting Telegram's limits.
fn grid_size(grid: &Grid, metrics: Metrics) -> (u32, u32) {
    let cols = u32::try_from(grid.cols()).unwrap_or(u32::MAX);
    let rows = u32::try_from(grid.visible_rows()).unwrap_or(u32::MAX);
    (
        cols.saturating_mul(metrics.cell_w)
            .saturating_add(2 * PADDING),
        rows.saturating_mul(metrics.cell_h)
            .saturating_add(2 * PADDING),
    )
}

/// Pads the shorter side so the aspect ratio stays within Telegram's limit. Callers keep
/// width + height under [`MAX_SIDES_SUM`] by capping rows and columns.
fn fit_telegram(width: u32, height: u32) -> (u32, u32) {
    let width = width.max(1);
    let height = height.max(1);
    (
        width.max(height.div_ceil(MAX_ASPECT)),
        height.max(width.div_ceil(MAX_ASPECT)),
    )
}

/// Paints all backgrounds first, then all glyphs, so a glyph that spills over its cell (a wide
/// character, a bold overhang) is not painted over by its neighbour's background.
fn paint(grid: &Grid) -> Result<Canvas, PaneImageError> {
    let fonts = Fonts::load()?;
    let metrics = fonts.metrics();
    let (width, height) = grid_size(grid, metrics);
    let (width, height) = fit_telegram(width, height);
    let mut canvas = Canvas::new(width, height, DEFAULT_BG);
    let cols = grid.cols();
    for_each_cell(grid, cols, metrics, |x, y, cell| {
        let (_, bg) = resolve(cell.style);
        if bg != DEFAULT_BG {
            canvas.fill_rect(x, y, metrics.cell_w, metrics.cell_h, bg);
        }
    });
    let mut cache: HashMap<(char, bool), Raster> = HashMap::new();
    for_each_cell(grid, cols, metrics, |x, y, cell| {
        let raster = cache
            .entry((cell.ch, cell.style.bold))
            .or_insert_with(|| rasterise(&fonts, metrics, cell.ch, cell.style.bold));
        draw_cell(&mut canvas, metrics, x, y, cell, raster);
    });
    Ok(canvas)
}

/// Calls `visit` with the top-left pixel of every cell within `cols`.
fn for_each_cell(
    grid: &Grid,
    cols: usize,
    metrics: Metrics,
    mut visit: impl FnMut(u32, u32, &Cell),
) {
    let mut y = PADDING;
    for row in grid.rows() {
        let mut x = PADDING;
        for cell in row.iter().take(cols) {
            visit(x, y, cell);
            x = x.saturating_add(metrics.cell_w);
        }
        y = y.saturating_add(metrics.cell_h);
    }
}

/// Draws one cell's glyph and decorations (its background is already painted).
fn draw_cell(canvas: &mut Canvas, metrics: Metrics, x: u32, y: u32, cell: &Cell, raster: &Raster) {
    if cell.width == 0 {
        return;
    }
    let (fg, _) = resolve(cell.style);
    if !cell.style.hidden {
        match raster {
            Raster::Blank => {}
            Raster::Missing => draw_missing_box(canvas, metrics, x, y, cell.width, fg),
            Raster::Bitmap {
                left,
                top,
                width,
                coverage,
            } => blit(
                canvas,
                i64::from(x) + left,
                i64::from(y) + top,
                *width,
                coverage,
                fg,
            ),
        }
    }
    let span = metrics.cell_w * u32::from(cell.width);
    if cell.style.underline {
        let line_y = (y + metrics.baseline + 2).min(y + metrics.cell_h - 1);
        canvas.fill_rect(x, line_y, span, 1, fg);
    }
    if cell.style.strike {
        canvas.fill_rect(x, y + metrics.baseline * 2 / 3, span, 1, fg);
    }
}

fn blit(canvas: &mut Canvas, left: i64, top: i64, width: u32, coverage: &[u8], fg: Rgb) {
    if width == 0 {
        return;
    }
    for (row, line) in coverage.chunks_exact(width as usize).enumerate() {
        for (col, &alpha) in line.iter().enumerate() {
            if alpha > 0 {
                canvas.blend(left + col as i64, top + row as i64, fg, alpha);
            }
        }
    }
}

/// The stand-in for a character the font lacks: a box outline across its cells.
fn draw_missing_box(canvas: &mut Canvas, metrics: Metrics, x: u32, y: u32, cells: u8, fg: Rgb) {
    let w = (metrics.cell_w * u32::from(cells)).saturating_sub(3).max(1);
    let top = y + metrics.cell_h / 6;
    let h = metrics.baseline.saturating_sub(metrics.cell_h / 6).max(1);
    let left = x + 1;
    canvas.fill_rect(left, top, w, 1, fg);
    canvas.fill_rect(left, top + h - 1, w, 1, fg);
    canvas.fill_rect(left, top, 1, h, fg);
    canvas.fill_rect(left + w - 1, top, 1, h, fg);
}

fn encode_png(canvas: &Canvas) -> Result<Vec<u8>, PaneImageError> {
    debug_assert!(canvas.width + canvas.height <= MAX_SIDES_SUM);
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, canvas.width, canvas.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&canvas.pixels)?;
    writer.finish()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::{io::Cursor, path::PathBuf};

    use proptest::prelude::*;

    use super::*;

    struct Decoded {
        width: u32,
        height: u32,
        pixels: Vec<u8>,
    }

    impl Decoded {
        fn pixel(&self, x: u32, y: u32) -> Rgb {
            let at = (y as usize * self.width as usize + x as usize) * 3;
            [self.pixels[at], self.pixels[at + 1], self.pixels[at + 2]]
        }
    }

    fn decode(bytes: &[u8]) -> Decoded {
        let mut reader = png::Decoder::new(Cursor::new(bytes)).read_info().unwrap();
        let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
        let info = reader.next_frame(&mut pixels).unwrap();
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        pixels.truncate(info.buffer_size());
        Decoded {
            width: info.width,
            height: info.height,
            pixels,
        }
    }

    fn metrics() -> Metrics {
        Fonts::load().unwrap().metrics()
    }

    fn testdata(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/pane_image")
            .join(name)
    }

    #[test]
    fn golden_sample() {
        let ansi = std::fs::read_to_string(testdata("sample.ansi")).unwrap();
        let png = render_png(&ansi).unwrap();
        let golden_path = testdata("sample.png");
        if std::env::var("UPDATE_GOLDEN").is_ok_and(|v| v == "1") {
            std::fs::write(&golden_path, &png).unwrap();
        }
        let golden = decode(&std::fs::read(&golden_path).unwrap());
        let actual = decode(&png);
        assert_eq!((actual.width, actual.height), (golden.width, golden.height));
        assert!(
            actual.pixels == golden.pixels,
            "pixels differ from {}; rerun with UPDATE_GOLDEN=1 if the change is intended",
            golden_path.display()
        );
    }

    #[test]
    fn size_follows_cols_and_rows() {
        let m = metrics();
        let line = "x".repeat(42);
        let img = decode(&render_png(&format!("{line}\nb\nc\n\n\n")).unwrap());
        assert_eq!(img.width, 42 * m.cell_w + 2 * PADDING);
        assert_eq!(img.height, 3 * m.cell_h + 2 * PADDING);
    }

    #[test]
    fn width_is_clamped() {
        let m = metrics();
        let narrow = decode(&render_png("ab").unwrap());
        assert_eq!(narrow.width, MIN_COLS as u32 * m.cell_w + 2 * PADDING);
        let wide = parse(&"y".repeat(MAX_COLS + 50));
        assert_eq!(wide.cols(), MAX_COLS);
        assert_eq!(wide.rows()[0].len(), MAX_COLS);
    }

    #[test]
    fn only_the_last_rows_are_kept() {
        let text: String = (0..MAX_ROWS + 10).map(|i| format!("{i}\n")).collect();
        let grid = parse(&text);
        assert_eq!(grid.rows().len(), MAX_ROWS);
        assert_eq!(grid.rows()[0][0].ch, '1');
        assert_eq!(grid.rows()[0][1].ch, '0');
    }

    #[test]
    fn red_background_cell_is_red_at_its_centre() {
        let m = metrics();
        let img = decode(&render_png("ab\x1b[41m \x1b[0mcd").unwrap());
        let centre = |col: u32| {
            (
                PADDING + col * m.cell_w + m.cell_w / 2,
                PADDING + m.cell_h / 2,
            )
        };
        let (x, y) = centre(2);
        assert_eq!(img.pixel(x, y), PALETTE[1]);
        let (x, y) = centre(5);
        assert_eq!(img.pixel(x, y), DEFAULT_BG);
    }

    #[test]
    fn blank_capture_is_a_small_valid_image() {
        let m = metrics();
        for blank in ["", "\n\n\n", "   \n \x1b[0m\n"] {
            let img = decode(&render_png(blank).unwrap());
            assert_eq!(img.width, MIN_COLS as u32 * m.cell_w + 2 * PADDING);
            assert!(img.height >= m.cell_h + 2 * PADDING);
            assert!(img.pixels.chunks_exact(3).all(|px| px == DEFAULT_BG));
        }
    }

    #[test]
    fn one_long_line_is_padded_to_telegram_aspect_ratio() {
        let img = decode(&render_png(&"z".repeat(MAX_COLS)).unwrap());
        assert!(img.width <= MAX_ASPECT * img.height);
        assert!(img.width + img.height <= MAX_SIDES_SUM);
    }

    /// Checked on the computed size: painting the largest image takes seconds in debug builds.
    #[test]
    fn largest_image_fits_telegram() {
        let line = "w".repeat(MAX_COLS + 5);
        let grid = parse(&vec![line; MAX_ROWS + 5].join("\n"));
        let (w, h) = grid_size(&grid, metrics());
        assert_eq!((w, h), fit_telegram(w, h));
        assert!(w + h <= MAX_SIDES_SUM);
        assert!(h <= MAX_ASPECT * w);
    }

    #[test]
    fn sgr_codes_are_parsed() {
        let grid = parse(
            "\x1b[1;2;3;4;7;8;9;31;42ma\x1b[22;23;24;27;28;29;39;49mb\
             \x1b[38;5;208;48;2;1;2;3mc\x1b[38:2::10:20:30;48:5:17md\x1b[0;97;104me",
        );
        let styles: Vec<Style> = grid.rows()[0].iter().map(|c| c.style).collect();
        let all = Style {
            fg: Color::Indexed(1),
            bg: Color::Indexed(2),
            bold: true,
            dim: true,
            italic: true,
            underline: true,
            strike: true,
            reverse: true,
            hidden: true,
        };
        assert_eq!(styles[0], all);
        assert_eq!(styles[1], Style::default());
        assert_eq!(styles[2].fg, Color::Indexed(208));
        assert_eq!(styles[2].bg, Color::Rgb(1, 2, 3));
        assert_eq!(styles[3].fg, Color::Rgb(10, 20, 30));
        assert_eq!(styles[3].bg, Color::Indexed(17));
        assert_eq!(styles[4].fg, Color::Indexed(15));
        assert_eq!(styles[4].bg, Color::Indexed(12));
    }

    #[test]
    fn style_carries_across_lines_and_other_escapes_are_skipped() {
        let grid = parse("\x1b[31ma\x1b[2K\x1b[?25l\nb\x1b]8;;http://x\x1b\\c\x1b]0;t\x07d\x1b(Be");
        let rows = grid.rows();
        assert_eq!(rows.len(), 2);
        let text: String = rows[1].iter().map(|c| c.ch).collect();
        assert_eq!(text, "bcde");
        assert!(rows[1].iter().all(|c| c.style.fg == Color::Indexed(1)));
    }

    #[test]
    fn wide_characters_take_two_cells() {
        let grid = parse("日本x🚀\u{301}");
        let widths: Vec<u8> = grid.rows()[0].iter().map(|c| c.width).collect();
        assert_eq!(widths, [2, 0, 2, 0, 1, 2, 0]);
    }

    #[test]
    fn indexed_colours() {
        assert_eq!(indexed_rgb(1), PALETTE[1]);
        assert_eq!(indexed_rgb(16), [0, 0, 0]);
        assert_eq!(indexed_rgb(196), [255, 0, 0]);
        assert_eq!(indexed_rgb(231), [255, 255, 255]);
        assert_eq!(indexed_rgb(232), [8, 8, 8]);
        assert_eq!(indexed_rgb(255), [238, 238, 238]);
    }

    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<char>().prop_map(String::from),
            "[ -~]{0,8}",
            "[0-9;:?]{0,12}".prop_map(|p| format!("\x1b[{p}m")),
            "[0-9;:?<>= ]{0,8}[@-~]?".prop_map(|p| format!("\x1b[{p}")),
            Just("\x1b".to_string()),
            Just("\x1b]8;;".to_string()),
            Just("\n".to_string()),
            Just("\t".to_string()),
            Just("日🚀\u{301}".to_string()),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_input_renders_a_decodable_png(
            parts in proptest::collection::vec(fragment(), 0..40),
            raw in any::<String>(),
        ) {
            for input in [parts.concat(), raw] {
                let grid = parse(&input);
                prop_assert!(grid.rows().len() <= MAX_ROWS);
                prop_assert!(grid.rows().iter().all(|r| r.len() <= MAX_COLS));
                let img = decode(&render_png(&input).unwrap());
                prop_assert!(img.width + img.height <= MAX_SIDES_SUM);
                prop_assert!(img.width <= MAX_ASPECT * img.height);
                prop_assert!(img.height <= MAX_ASPECT * img.width);
            }
        }
    }
}
