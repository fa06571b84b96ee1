//! A camera's site: where it stands (`location`), the street `address` and city
//! `grid` its view belongs to, which way it looks (`heading_deg`), a `description`;
//! a zone may name its own `grid` and `address`. The values travel unchanged in
//! every event (`site`) and in the node's info message.
//!
//! Checked here: coordinates in WGS-84 ranges, a heading within a circle, texts
//! that are not blank. Each error names its key.

use super::{CameraConfig, Location, ZoneConfig};

/// The key (below the camera's or zone's own key) and the problem.
pub(super) type SiteError = (String, String);

/// Checks a camera's site keys.
pub(super) fn check_camera(cam: &CameraConfig) -> Result<(), SiteError> {
    if let Some(loc) = cam.location {
        check_location(loc)?;
    }
    if let Some(h) = cam.heading_deg
        && !(h.is_finite() && (0.0..360.0).contains(&h))
    {
        return Err((
            "heading_deg".into(),
            format!(
                "{h} is not a compass heading: use degrees from 0 (north) up to, not including, 360"
            ),
        ));
    }
    for (key, text) in [
        ("address", &cam.address),
        ("grid", &cam.grid),
        ("description", &cam.description),
    ] {
        check_text(key, text.as_deref())?;
    }
    Ok(())
}

/// Checks a zone's `grid` and `address` overrides.
pub(super) fn check_zone(zone: &ZoneConfig) -> Result<(), SiteError> {
    check_text("grid", zone.grid.as_deref())?;
    check_text("address", zone.address.as_deref())
}

fn check_location(loc: Location) -> Result<(), SiteError> {
    if !(loc.lat.is_finite() && (-90.0..=90.0).contains(&loc.lat)) {
        return Err((
            "location.lat".into(),
            format!(
                "{} is not a latitude: must be from -90 to 90 degrees (WGS-84)",
                loc.lat
            ),
        ));
    }
    if !(loc.lon.is_finite() && (-180.0..=180.0).contains(&loc.lon)) {
        return Err((
            "location.lon".into(),
            format!(
                "{} is not a longitude: must be from -180 to 180 degrees (WGS-84)",
                loc.lon
            ),
        ));
    }
    Ok(())
}

fn check_text(key: &str, text: Option<&str>) -> Result<(), SiteError> {
    match text {
        Some(t) if t.trim().is_empty() => Err((
            key.into(),
            "must not be blank (leave it out instead)".into(),
        )),
        Some(t) if t.chars().any(char::is_control) => Err((
            key.into(),
            "must be one line without control characters".into(),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(extra: &str) -> CameraConfig {
        toml::from_str(&format!("id = \"gate\"\nurl = \"x.mp4\"\n{extra}")).expect("camera TOML")
    }

    #[test]
    fn site_values_are_checked_key_by_key() {
        for (extra, want) in [
            ("", None),
            (
                "location = { lat = 39.9042, lon = 116.4074 }\naddress = \"12 Jingmi Rd\"\ngrid = \"0231-07\"\nheading_deg = 0\ndescription = \"bus stop\"",
                None,
            ),
            (
                "location = { lat = -90, lon = 180 }\nheading_deg = 359.9",
                None,
            ),
            ("location = { lat = 90.5, lon = 0 }", Some("location.lat")),
            (
                "location = { lat = 0, lon = -180.01 }",
                Some("location.lon"),
            ),
            ("location = { lat = nan, lon = 0 }", Some("location.lat")),
            ("heading_deg = 360", Some("heading_deg")),
            ("heading_deg = -1", Some("heading_deg")),
            ("address = \"  \"", Some("address")),
            ("grid = \"\"", Some("grid")),
            ("description = \"a\\nb\"", Some("description")),
        ] {
            let got = check_camera(&camera(extra)).err().map(|(k, _)| k);
            assert_eq!(got.as_deref(), want, "{extra}");
        }
    }

    #[test]
    fn zone_overrides_are_checked() {
        let zone = |extra: &str| -> ZoneConfig {
            toml::from_str(&format!(
                "id = \"z\"\npolygon = [[0,0],[1,0],[1,1]]\n{extra}"
            ))
            .unwrap()
        };
        assert!(check_zone(&zone("grid = \"0231-08\"\naddress = \"14 Jingmi Rd\"")).is_ok());
        assert_eq!(check_zone(&zone("grid = \" \"")).unwrap_err().0, "grid");
        assert_eq!(
            check_zone(&zone("address = \"\"")).unwrap_err().0,
            "address"
        );
    }

    #[test]
    fn location_needs_both_coordinates() {
        let err = toml::from_str::<CameraConfig>("id = \"g\"\nurl = \"x\"\nlocation = { lat = 1 }")
            .unwrap_err();
        assert!(err.to_string().contains("lon"), "{err}");
    }
}
