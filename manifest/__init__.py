# Marks the manifest folder as package data (installed as modelzoo/manifest_data/).
