// AsyncCodeApp
