// Package report renders lmood results for people and for other programs.
//
// It knows nothing about models: the analysis code converts its results into
// the small value types defined here (TokenScore, PromptRow, LayerSeries,
// Grid) and report turns them into
//
//   - terminal tables (Table, LayerTable) and sparklines (Sparkline);
//   - token heatmaps that colour the prompt's own text by score (Heatmap),
//     and token × layer grids (GridHeatmap), in true colour, 256 colours,
//     16 colours or plain text (Mode);
//   - JSON Lines (WriteJSONL);
//   - PNG line plots of the ratio across hidden states (PlotLayers).
//
// Token text comes from a tokenizer and the user's input, so it is treated
// as hostile: everything that reaches a terminal first goes through
// Sanitize, which replaces control characters, escape sequences, bidi
// controls, zero-width characters and invalid UTF-8 with visible stand-ins.
// The only escape sequences this package writes are its own SGR colour
// codes, and every coloured run is closed with a reset before a line ends.
//
// Widths are measured in terminal cells with East Asian ambiguous characters
// counted as narrow, so output is the same whatever the locale.
package report
