"""Segments: a versioned rule language over customers, evaluated by per-corp bitmaps and checked against SQL."""
