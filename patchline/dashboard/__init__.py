"""`patchline dashboard`: a live web page of every camera, fed from the broker."""
