"""sdr_drivers"""
