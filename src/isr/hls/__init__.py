"""HLS: playlists and the containers of their segments (see DESIGN.md "HLS sources")."""
