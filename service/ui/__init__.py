"""The web dashboard (DESIGN §11): static pages served at `/` by the API server
itself, drawing with the plotly.js bundle shipped inside the `plotly` package."""
